/* W1-W3 and W3s (as benches/README.md describes them) through the C API, side by side with SQLite's C API on the same disk.
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

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BODY = 100, W1_N = 10000, W2_N = 200000, W3_N = 200000, W3S_SQ_N = 20000, BATCH = 1000 };

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

static double lat_m[W1_N], lat_s[W1_N];

static void percentiles(double *lat, double *p50, double *p99) {
    qsort(lat, W1_N, sizeof(double), cmp_d);
    *p50 = lat[W1_N / 2] * 1e6;
    *p99 = lat[W1_N * 99 / 100] * 1e6;
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

static const mqlite_message *batch[BATCH];
static mqlite_delivery *ds[BATCH];

/* n async sends with a callback each; returns when every callback has fired */
static void mq_async(struct opened *o, long n) {
    __atomic_store_n(&remaining, n, __ATOMIC_RELEASE);
    for (long i = 0; i < n; i++) M(mqlite_queue_send_async(o->q, o->m, on_sent, NULL, NULL, &e_));
    pthread_mutex_lock(&mu);
    while (__atomic_load_n(&remaining, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void mq_batches(struct opened *o, long n) {
    for (int i = 0; i < BATCH; i++) batch[i] = o->m;
    for (long i = 0; i < n / BATCH; i++) M(mqlite_queue_send_batch(o->q, batch, BATCH, NULL, &e_));
}

/* W3: receive into a batch object (no handle per delivery), read each body, ack the batch */
static void mq_drain(struct opened *o, long n) {
    mqlite_delivery_batch *b = mqlite_delivery_batch_new();
    while (n > 0) {
        size_t got = 0;
        M(mqlite_queue_receive_into(o->q, BATCH, 1000, b, &got, &e_));
        for (size_t i = 0; i < got; i++) {
            const uint8_t *data = NULL;
            size_t len = 0;
            M(mqlite_message_body(mqlite_delivery_message(mqlite_delivery_batch_get(b, i)), &data, &len));
            if (len != BODY) abort();
        }
        M(mqlite_delivery_batch_ack(b, &e_)); /* one record per batch */
        n -= (long)got;
    }
    mqlite_delivery_batch_free(b);
}

/* W3 (info): the older call, a handle per delivery in the caller's pointer array */
static void mq_drain_handles(struct opened *o, long n) {
    while (n > 0) {
        size_t got = 0;
        M(mqlite_queue_receive_batch(o->q, BATCH, 1000, ds, &got, &e_));
        M(mqlite_queue_ack_batch(o->q, ds, got, &e_)); /* one record per batch */
        for (size_t i = 0; i < got; i++) mqlite_delivery_free(ds[i]);
        n -= (long)got;
    }
}

/* W3s: the idiomatic consumer with default options (prefetch, lazy acks): receive one, ack it */
static void mq_each(struct opened *o, long n) {
    for (long i = 0; i < n; i++) {
        mqlite_delivery *d = NULL;
        M(mqlite_queue_receive(o->q, 1000, &d, &e_));
        if (d == NULL) {
            fprintf(stderr, "W3s: the backlog ran dry\n");
            exit(1);
        }
        M(mqlite_delivery_ack(d, &e_));
        mqlite_delivery_free(d);
    }
}

/* ------------------------------------------------------------------ SQLite */

struct db {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *ins, *sel, *sel1, *del, *begin, *commit;
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
    sqlite3_prepare_v2(d.db, "SELECT id, body FROM q WHERE state = 0 ORDER BY id LIMIT 1", -1, &d.sel1, NULL);
    sqlite3_prepare_v2(d.db, "DELETE FROM q WHERE id = ?", -1, &d.del, NULL);
    sqlite3_prepare_v2(d.db, "BEGIN IMMEDIATE", -1, &d.begin, NULL);
    sqlite3_prepare_v2(d.db, "COMMIT", -1, &d.commit, NULL);
    return d;
}

static void sq_close(struct db *d) {
    sqlite3_finalize(d->ins);
    sqlite3_finalize(d->sel);
    sqlite3_finalize(d->sel1);
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

static void sq_batches(struct db *d, long n) {
    for (long i = 0; i < n / BATCH; i++) {
        step(d->begin);
        for (int j = 0; j < BATCH; j++) sq_insert(d);
        step(d->commit);
    }
}

/* select-and-delete in transactions of 100, as a consumer acking each message would */
static void sq_drain(struct db *d, long n) {
    sqlite3_int64 ids[100];
    while (n > 0) {
        step(d->begin);
        int got = 0;
        while (sqlite3_step(d->sel) == SQLITE_ROW) {
            ids[got++] = sqlite3_column_int64(d->sel, 0);
            (void)sqlite3_column_blob(d->sel, 1);
        }
        sqlite3_reset(d->sel);
        for (int i = 0; i < got; i++) {
            sqlite3_bind_int64(d->del, 1, ids[i]);
            step(d->del);
        }
        step(d->commit);
        n -= got;
        if (got == 0) break;
    }
}

/* W3s baseline: one transaction per consumed message (select the oldest, delete it, commit) */
static void sq_each(struct db *d, long n) {
    for (long i = 0; i < n; i++) {
        step(d->begin);
        if (sqlite3_step(d->sel1) != SQLITE_ROW) exit(1);
        sqlite3_int64 id = sqlite3_column_int64(d->sel1, 0);
        (void)sqlite3_column_blob(d->sel1, 1);
        sqlite3_reset(d->sel1);
        sqlite3_bind_int64(d->del, 1, id);
        step(d->del);
        step(d->commit);
    }
}

/* The disk's own rate: 100-byte pwrite + fdatasync into a preallocated file. */
static double disk_rate(long n) {
    char *p = fresh_path("raw");
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || posix_fallocate(fd, 0, (n + 1) * BODY) != 0 || fsync(fd) != 0) exit(1);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (pwrite(fd, body, BODY, i * BODY) != BODY || fdatasync(fd) != 0) exit(1);
    }
    double r = (double)n / (now_s() - t0);
    close(fd);
    rm_rf(p);
    free(p);
    return r;
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

/* Each workload runs both sides chunk by chunk, alternating, so that a burst of load from
 * elsewhere on the machine hits both rather than one. */
enum { CHUNKS = 10 };

struct result {
    double mq, mq2, sq;
    double p50m, p99m, p50s, p99s;
};

static struct result w1(void) {
    struct opened o = mq_open();
    struct db d = sq_open();
    double tm = 0, ts = 0;
    for (int c = 0; c < CHUNKS; c++) {
        int from = c * (W1_N / CHUNKS), to = from + W1_N / CHUNKS;
        double t0 = now_s();
        for (int i = from; i < to; i++) {
            double a = now_s();
            M(mqlite_queue_send(o.q, o.m, NULL, &e_));
            lat_m[i] = now_s() - a;
        }
        double t1 = now_s();
        for (int i = from; i < to; i++) {
            double a = now_s();
            step(d.begin);
            sq_insert(&d);
            step(d.commit);
            lat_s[i] = now_s() - a;
        }
        double t2 = now_s();
        tm += t1 - t0;
        ts += t2 - t1;
    }
    struct result r = {W1_N / tm, 0, W1_N / ts, 0, 0, 0, 0};
    percentiles(lat_m, &r.p50m, &r.p99m);
    percentiles(lat_s, &r.p50s, &r.p99s);
    mq_close(&o);
    sq_close(&d);
    return r;
}

static struct result w2(void) {
    struct opened o = mq_open(), o2 = mq_open();
    struct db d = sq_open();
    double ta = 0, tb = 0, ts = 0;
    for (int c = 0; c < CHUNKS; c++) {
        double t0 = now_s();
        mq_async(&o, W2_N / CHUNKS);
        double t1 = now_s();
        mq_batches(&o2, W2_N / CHUNKS);
        double t2 = now_s();
        sq_batches(&d, W2_N / CHUNKS);
        double t3 = now_s();
        ta += t1 - t0, tb += t2 - t1, ts += t3 - t2;
    }
    struct result r = {W2_N / ta, W2_N / tb, W2_N / ts, 0, 0, 0, 0};
    mq_close(&o);
    mq_close(&o2);
    sq_close(&d);
    return r;
}

/* A drain of a backlog of `mq_n` (mqlite) and `sq_n` (SQLite) messages, filled untimed, each
 * drained chunk by chunk in turn by `mq_step` and `sq_step`. */
static struct result drain_both(void (*mq_step)(struct opened *, long), long mq_n,
                                void (*sq_step)(struct db *, long), long sq_n) {
    struct opened o = mq_open();
    struct db d = sq_open();
    mq_batches(&o, mq_n);
    sq_batches(&d, sq_n);
    double tm = 0, ts = 0;
    for (int c = 0; c < CHUNKS; c++) {
        double t0 = now_s();
        mq_step(&o, mq_n / CHUNKS);
        double t1 = now_s();
        sq_step(&d, sq_n / CHUNKS);
        double t2 = now_s();
        tm += t1 - t0, ts += t2 - t1;
    }
    struct result r = {(double)mq_n / tm, 0, (double)sq_n / ts, 0, 0, 0, 0};
    mq_close(&o);
    sq_close(&d);
    return r;
}

static struct result w3(void) {
    struct result r = drain_both(mq_drain, W3_N, sq_drain, W3_N);
    r.mq2 = drain_both(mq_drain_handles, W3_N, sq_drain, W3_N / 10).mq;
    return r;
}

static struct result w3s_run(void) {
    struct result r = drain_both(mq_each, W3_N, sq_each, W3S_SQ_N);
    r.mq2 = disk_rate(W1_N);
    return r;
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

    struct series w1m = {{0}, 0}, w1s = {{0}, 0}, w2a = {{0}, 0}, w2b = {{0}, 0}, w2s = {{0}, 0}, w3m = {{0}, 0},
                  w3s = {{0}, 0}, p50m = {{0}, 0}, p99m = {{0}, 0}, p50s = {{0}, 0}, p99s = {{0}, 0},
                  e3m = {{0}, 0}, e3s = {{0}, 0}, disk = {{0}, 0}, w3h = {{0}, 0};
    for (int r = 0; r < runs; r++) {
        struct result a = w1(), b = w2(), c = w3();
        w1m.v[w1m.n++] = a.mq, w1s.v[w1s.n++] = a.sq;
        p50m.v[p50m.n++] = a.p50m, p99m.v[p99m.n++] = a.p99m, p50s.v[p50s.n++] = a.p50s, p99s.v[p99s.n++] = a.p99s;
        w2a.v[w2a.n++] = b.mq, w2b.v[w2b.n++] = b.mq2, w2s.v[w2s.n++] = b.sq;
        w3m.v[w3m.n++] = c.mq, w3s.v[w3s.n++] = c.sq, w3h.v[w3h.n++] = c.mq2;
        struct result e = w3s_run();
        e3m.v[e3m.n++] = e.mq, e3s.v[e3s.n++] = e.sq, disk.v[disk.n++] = e.mq2;
        fprintf(stderr, "run %d: W1 %.0f/%.0f  W2 %.0f|%.0f/%.0f  W3 %.0f/%.0f\n", r + 1, a.mq, a.sq, b.mq, b.mq2,
                b.sq, c.mq, c.sq);
    }
    report("W1 sync durable send (10k)", &w1m, &w1s);
    printf("%-34s mqlite p50 %.0f us p99 %.0f us   sqlite p50 %.0f us p99 %.0f us (medians)\n", "W1 latency",
           median(&p50m), median(&p99m), median(&p50s), median(&p99s));
    report("W2 async send + callback (200k)", &w2a, &w2s);
    report("W2 send_batch of 1000 (200k)", &w2b, &w2s);
    report("W3 drain 200k, receive_into+ack", &w3m, &w3s);
    report("W3 (info) receive_batch handles", &w3h, &w3s);
    report("W3s receive(timeout)+ack each", &e3m, &e3s);
    printf("%-34s %10.0f /s (the disk's own rate, for scale; SQLite above: one transaction per message)\n",
           "disk 100 B pwrite+fdatasync", median(&disk));
    printf("W3s target: >= 300,000 msgs/s (as Rust) and >= 30x SQLite: %s, %s\n",
           median(&e3m) >= 3e5 ? "PASS" : "MISS", median(&e3m) / median(&e3s) >= 30 ? "PASS" : "MISS");
    return 0;
}
