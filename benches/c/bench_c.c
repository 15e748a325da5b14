/* W1-W3 (BENCHMARKS.md) through the C API, side by side with SQLite's C API on the same disk.
 *
 *   benches/c/run.sh            # builds the release library, compiles this, runs it
 *   bench_c DIR [RUNS]          # DIR: where stores and databases go (same disk for both)
 *
 * SQLite baseline: a queue table in WAL mode with synchronous=FULL. W1: one INSERT per
 * transaction. W2: 1,000 INSERTs per transaction. W3: select-and-delete in transactions of 100.
 */
#define _POSIX_C_SOURCE 200809L
#include <mqlite.h>
#include <sqlite3.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BODY = 100, W1_N = 10000, W2_N = 200000, W3_N = 200000, BATCH = 1000 };

static uint8_t body[BODY];
static const char *base;
static int run_no = 0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, mqlite_status st, mqlite_error *err) {
    fprintf(stderr, "%s: %s: %s\n", what, mqlite_status_str(st), mqlite_error_message(err));
    exit(1);
}
#define M(expr)                                        \
    do {                                               \
        mqlite_error *e_ = NULL;                       \
        mqlite_status s_ = (expr);                     \
        if (s_ != MQLITE_OK) die(#expr, s_, e_);       \
    } while (0)
static char *fresh_path(const char *kind) {
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s-%d-%d", base, kind, (int)getpid(), run_no++);
    return p;
}

static void rm_rf(const char *p) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s-wal' '%s-shm'", p, p, p);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", p);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ mqlite */

struct opened {
    char *dir;
    mqlite_store *s;
    mqlite_queue *q;
    mqlite_message *m;
};

static struct opened mq_open(void) {
    struct opened o;
    o.dir = fresh_path("mqlite");
    M(mqlite_store_open(o.dir, strlen(o.dir), NULL, &o.s, &e_));
    M(mqlite_store_queue(o.s, "bench", 5, &o.q, &e_));
    M(mqlite_message_new(body, BODY, &o.m, &e_));
    return o;
}

static void mq_close(struct opened *o) {
    mqlite_message_free(o->m);
    mqlite_queue_free(o->q);
    M(mqlite_store_close(o->s, &e_));
    mqlite_store_free(o->s);
    rm_rf(o->dir);
    free(o->dir);
}

static double lat[W1_N];
static double p50, p99;

static void percentiles(void) {
    qsort(lat, W1_N, sizeof(double), cmp_d);
    p50 = lat[W1_N / 2] * 1e6;
    p99 = lat[W1_N * 99 / 100] * 1e6;
}

static double mq_w1(void) {
    struct opened o = mq_open();
    double t0 = now_s();
    for (int i = 0; i < W1_N; i++) {
        double a = now_s();
        M(mqlite_queue_send(o.q, o.m, NULL, &e_));
        lat[i] = now_s() - a;
    }
    double rate = W1_N / (now_s() - t0);
    percentiles();
    mq_close(&o);
    return rate;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long remaining;

static void on_sent(void *ud, mqlite_status st, uint64_t id, const mqlite_error *err) {
    (void)ud, (void)id, (void)err;
    if (st != MQLITE_OK) abort();
    /* a plain counter: only the last completion takes the lock */
    if (__atomic_sub_fetch(&remaining, 1, __ATOMIC_ACQ_REL) == 0) {
        pthread_mutex_lock(&mu);
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
}

static double mq_w2_async(void) {
    struct opened o = mq_open();
    remaining = W2_N;
    double t0 = now_s();
    for (int i = 0; i < W2_N; i++) M(mqlite_queue_send_async(o.q, o.m, on_sent, NULL, NULL, &e_));
    pthread_mutex_lock(&mu);
    while (__atomic_load_n(&remaining, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    double rate = W2_N / (now_s() - t0);
    mq_close(&o);
    return rate;
}

static const mqlite_message *batch[BATCH];

static double mq_w2_batch(void) {
    struct opened o = mq_open();
    for (int i = 0; i < BATCH; i++) batch[i] = o.m;
    double t0 = now_s();
    for (int i = 0; i < W2_N / BATCH; i++) M(mqlite_queue_send_batch(o.q, batch, BATCH, NULL, &e_));
    double rate = W2_N / (now_s() - t0);
    mq_close(&o);
    return rate;
}

static mqlite_delivery *ds[BATCH];

static double mq_w3(void) {
    struct opened o = mq_open();
    for (int i = 0; i < BATCH; i++) batch[i] = o.m;
    for (int i = 0; i < W3_N / BATCH; i++) M(mqlite_queue_send_batch(o.q, batch, BATCH, NULL, &e_));
    double t0 = now_s();
    long left = W3_N;
    while (left > 0) {
        size_t n = 0;
        M(mqlite_queue_receive_batch(o.q, BATCH, 1000, ds, &n, &e_));
        M(mqlite_queue_ack_batch(o.q, ds, n, &e_)); /* one durable record per batch */
        for (size_t i = 0; i < n; i++) mqlite_delivery_free(ds[i]);
        left -= (long)n;
    }
    double rate = W3_N / (now_s() - t0);
    mq_close(&o);
    return rate;
}

/* ------------------------------------------------------------------ SQLite */

struct db {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *ins, *sel, *del, *begin, *commit;
};

static void exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s: %s\n", sql, msg);
        exit(1);
    }
}

static void step(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite step: %s\n", sqlite3_errstr(rc));
        exit(1);
    }
    sqlite3_reset(s);
}

static struct db sq_open(void) {
    struct db d;
    d.path = fresh_path("sqlite");
    if (sqlite3_open(d.path, &d.db) != SQLITE_OK) exit(1);
    exec(d.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE q (id INTEGER PRIMARY KEY, body BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0)");
    sqlite3_prepare_v2(d.db, "INSERT INTO q (body) VALUES (?)", -1, &d.ins, NULL);
    sqlite3_prepare_v2(d.db, "SELECT id, body FROM q WHERE state = 0 ORDER BY id LIMIT 100", -1, &d.sel, NULL);
    sqlite3_prepare_v2(d.db, "DELETE FROM q WHERE id = ?", -1, &d.del, NULL);
    sqlite3_prepare_v2(d.db, "BEGIN IMMEDIATE", -1, &d.begin, NULL);
    sqlite3_prepare_v2(d.db, "COMMIT", -1, &d.commit, NULL);
    return d;
}

static void sq_close(struct db *d) {
    sqlite3_finalize(d->ins);
    sqlite3_finalize(d->sel);
    sqlite3_finalize(d->del);
    sqlite3_finalize(d->begin);
    sqlite3_finalize(d->commit);
    sqlite3_close(d->db);
    rm_rf(d->path);
    free(d->path);
}

static void sq_insert(struct db *d) {
    sqlite3_bind_blob(d->ins, 1, body, BODY, SQLITE_STATIC);
    step(d->ins);
}

static double sq_w1(void) {
    struct db d = sq_open();
    double t0 = now_s();
    for (int i = 0; i < W1_N; i++) {
        double a = now_s();
        step(d.begin);
        sq_insert(&d);
        step(d.commit);
        lat[i] = now_s() - a;
    }
    double rate = W1_N / (now_s() - t0);
    percentiles();
    sq_close(&d);
    return rate;
}

static void sq_fill(struct db *d, int n) {
    for (int i = 0; i < n / BATCH; i++) {
        step(d->begin);
        for (int j = 0; j < BATCH; j++) sq_insert(d);
        step(d->commit);
    }
}

static double sq_w2(void) {
    struct db d = sq_open();
    double t0 = now_s();
    sq_fill(&d, W2_N);
    double rate = W2_N / (now_s() - t0);
    sq_close(&d);
    return rate;
}

static double sq_w3(void) {
    struct db d = sq_open();
    sq_fill(&d, W3_N);
    double t0 = now_s();
    long left = W3_N;
    sqlite3_int64 ids[100];
    while (left > 0) {
        step(d.begin);
        int n = 0;
        while (sqlite3_step(d.sel) == SQLITE_ROW) {
            ids[n++] = sqlite3_column_int64(d.sel, 0);
            (void)sqlite3_column_blob(d.sel, 1); /* read the body, as a consumer would */
        }
        sqlite3_reset(d.sel);
        for (int i = 0; i < n; i++) {
            sqlite3_bind_int64(d.del, 1, ids[i]);
            step(d.del);
        }
        step(d.commit);
        left -= n;
        if (n == 0) break;
    }
    double rate = W3_N / (now_s() - t0);
    sq_close(&d);
    return rate;
}

/* ------------------------------------------------------------------ driver */

struct series {
    double v[16];
    int n;
};

static double median(struct series *s) {
    double t[16];
    memcpy(t, s->v, sizeof(double) * (size_t)s->n);
    qsort(t, (size_t)s->n, sizeof(double), cmp_d);
    return t[s->n / 2];
}
static double minv(struct series *s) {
    double m = s->v[0];
    for (int i = 1; i < s->n; i++) m = s->v[i] < m ? s->v[i] : m;
    return m;
}
static double maxv(struct series *s) {
    double m = s->v[0];
    for (int i = 1; i < s->n; i++) m = s->v[i] > m ? s->v[i] : m;
    return m;
}

static void report(const char *name, struct series *ours, struct series *theirs) {
    double a = median(ours), b = median(theirs);
    printf("%-34s mqlite %10.0f msgs/s (%.0f-%.0f)   sqlite %10.0f msgs/s (%.0f-%.0f)   ratio %.2fx\n", name, a,
           minv(ours), maxv(ours), b, minv(theirs), maxv(theirs), a / b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [RUNS]\n", argv[0]);
        return 2;
    }
    base = argv[1];
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1 || runs > 16) runs = 3;
    for (int i = 0; i < BODY; i++) body[i] = (uint8_t)('a' + i % 26);
    printf("mqlite %s (C API) vs SQLite %s (C API), %d runs each, 100-byte bodies, dir %s\n", mqlite_version(),
           sqlite3_libversion(), runs, base);

    struct series w1 = {{0}, 0}, w1s = {{0}, 0}, w2a = {{0}, 0}, w2b = {{0}, 0}, w2s = {{0}, 0}, w3 = {{0}, 0},
                  w3s = {{0}, 0};
    double p50m[16], p99m[16], p50s[16], p99s[16];
    for (int r = 0; r < runs; r++) {
        w1.v[w1.n++] = mq_w1();
        p50m[r] = p50, p99m[r] = p99;
        w1s.v[w1s.n++] = sq_w1();
        p50s[r] = p50, p99s[r] = p99;
        w2a.v[w2a.n++] = mq_w2_async();
        w2b.v[w2b.n++] = mq_w2_batch();
        w2s.v[w2s.n++] = sq_w2();
        w3.v[w3.n++] = mq_w3();
        w3s.v[w3s.n++] = sq_w3();
        fprintf(stderr, "run %d: W1 %.0f/%.0f  W2 %.0f|%.0f/%.0f  W3 %.0f/%.0f\n", r + 1, w1.v[r], w1s.v[r], w2a.v[r],
                w2b.v[r], w2s.v[r], w3.v[r], w3s.v[r]);
    }
    report("W1 sync durable send (10k)", &w1, &w1s);
    qsort(p50m, (size_t)runs, sizeof(double), cmp_d);
    qsort(p99m, (size_t)runs, sizeof(double), cmp_d);
    qsort(p50s, (size_t)runs, sizeof(double), cmp_d);
    qsort(p99s, (size_t)runs, sizeof(double), cmp_d);
    printf("%-34s mqlite p50 %.0f us p99 %.0f us   sqlite p50 %.0f us p99 %.0f us (medians)\n", "W1 latency",
           p50m[runs / 2], p99m[runs / 2], p50s[runs / 2], p99s[runs / 2]);
    report("W2 async send + callback (200k)", &w2a, &w2s);
    report("W2 send_batch of 1000 (200k)", &w2b, &w2s);
    report("W3 drain 200k, batch receive+ack", &w3, &w3s);
    return 0;
}
