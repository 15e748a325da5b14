/* Async sends: every callback fires exactly once (counted down under a mutex + condition
 * variable), free_user_data runs once after it, close completes pending callbacks, and a
 * callback may call back into the store (close from inside: WOULD_DEADLOCK). */
#include "common.h"

#include <pthread.h>

enum { N = 20000 };

struct tracker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int remaining;
    int fired[N];
    int freed[N];
    uint64_t ids[N];
    int failures;
    int out_of_order_free; /* free_user_data before its callback */
};

struct slot {
    struct tracker *t;
    int index;
};

static struct slot slots[N];

static void on_sent(void *ud, mqlite_status status, uint64_t id, const mqlite_error *err) {
    struct slot *s = ud;
    struct tracker *t = s->t;
    pthread_mutex_lock(&t->mu);
    t->fired[s->index]++;
    t->ids[s->index] = id;
    if (status != MQLITE_OK || err != NULL || id == 0) t->failures++;
    t->remaining--;
    if (t->remaining == 0) pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void free_slot(void *ud) {
    struct slot *s = ud;
    pthread_mutex_lock(&s->t->mu);
    if (s->t->fired[s->index] != 1) s->t->out_of_order_free++;
    s->t->freed[s->index]++;
    pthread_mutex_unlock(&s->t->mu);
}

static struct tracker T = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {0}, {0}, 0, 0};

static void test_countdown(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "async");
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"payload-payload-payload", 23, &m, ERR));
    T.remaining = N;
    for (int i = 0; i < N; i++) {
        slots[i].t = &T;
        slots[i].index = i;
        OK(mqlite_queue_send_async(q, m, on_sent, &slots[i], free_slot, ERR));
    }
    mqlite_message_free(m);
    pthread_mutex_lock(&T.mu);
    while (T.remaining > 0) pthread_cond_wait(&T.cv, &T.mu);
    pthread_mutex_unlock(&T.mu);
    OK(mqlite_store_flush(s, ERR)); /* lets the last free_user_data calls finish */
    int once = 1, freed_once = 1;
    for (int i = 0; i < N; i++) {
        if (T.fired[i] != 1) once = 0;
    }
    CHECK(once);
    CHECK(T.failures == 0);
    /* ids are unique and increasing in send order (one producer thread) */
    int increasing = 1;
    for (int i = 1; i < N; i++)
        if (T.ids[i] <= T.ids[i - 1]) increasing = 0;
    CHECK(increasing);
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == N);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    for (int i = 0; i < N; i++)
        if (T.freed[i] != 1) freed_once = 0;
    CHECK(freed_once);
    CHECK(T.out_of_order_free == 0);
    mqlite_store_free(s);
}

/* close() right after a burst of async sends completes every callback before returning. */
static int close_count = 0;
static pthread_mutex_t close_mu = PTHREAD_MUTEX_INITIALIZER;
static void count_cb(void *ud, mqlite_status status, uint64_t id, const mqlite_error *err) {
    (void)ud;
    (void)id;
    (void)err;
    pthread_mutex_lock(&close_mu);
    if (status == MQLITE_OK) close_count++;
    pthread_mutex_unlock(&close_mu);
}

static void test_close_completes(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "burst");
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"b", 1, &m, ERR));
    for (int i = 0; i < 5000; i++) OK(mqlite_queue_send_async(q, m, count_cb, NULL, NULL, ERR));
    OK(mqlite_store_close(s, ERR));
    pthread_mutex_lock(&close_mu);
    CHECK(close_count == 5000);
    pthread_mutex_unlock(&close_mu);
    /* after close: refused, and neither callback nor free runs */
    CHECK_STATUS(MQLITE_CLOSED, mqlite_queue_send_async(q, m, count_cb, NULL, NULL, ERR));
    mqlite_message_free(m);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* A callback calls back into its store. */
struct reentry {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mqlite_store *store;
    mqlite_queue *q;
    int done;
    mqlite_status close_status;
    mqlite_status send_status;
    mqlite_status receive_status;
};

static void reenter(void *ud, mqlite_status status, uint64_t id, const mqlite_error *err) {
    struct reentry *r = ud;
    (void)status;
    (void)id;
    (void)err;
    mqlite_status c = mqlite_store_close(r->store, NULL);
    mqlite_status snd = mqlite_queue_send_bytes(r->q, (const uint8_t *)"inner", 5, NULL, NULL);
    mqlite_delivery *d = NULL;
    mqlite_status rcv = mqlite_queue_receive(r->q, 1000, &d, NULL);
    if (rcv == MQLITE_OK) {
        mqlite_delivery_ack(d, NULL);
        mqlite_delivery_free(d);
    }
    pthread_mutex_lock(&r->mu);
    r->close_status = c;
    r->send_status = snd;
    r->receive_status = rcv;
    r->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void test_reentry(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "reentry");
    struct reentry r = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, s, q, 0, MQLITE_OK, MQLITE_INTERNAL, MQLITE_INTERNAL};
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"outer", 5, &m, ERR));
    OK(mqlite_queue_send_async(q, m, reenter, &r, NULL, ERR));
    mqlite_message_free(m);
    pthread_mutex_lock(&r.mu);
    while (!r.done) pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    CHECK(r.close_status == MQLITE_WOULD_DEADLOCK);
    CHECK(r.send_status == MQLITE_OK);
    CHECK(r.receive_status == MQLITE_OK);
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 1 && st.acked == 1);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* Producer window full with the fail option: QUEUE_FULL, and the callback is not taken. */
static void test_window(const char *dir) {
    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_producer_window(o, 0, 1, false, ERR));
    OK(mqlite_store_options_set_durability(o, MQLITE_DURABILITY_SYNC, 0, ERR));
    mqlite_store *s = open_store(dir, o);
    mqlite_store_options_free(o);
    mqlite_queue *q = open_queue(s, "window");
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"w", 1, &m, ERR));
    int full = 0;
    for (int i = 0; i < 2000 && !full; i++) {
        mqlite_status st = mqlite_queue_send_async(q, m, count_cb, NULL, NULL, NULL);
        if (st == MQLITE_QUEUE_FULL) full = 1;
        else CHECK(st == MQLITE_OK);
    }
    CHECK(full);
    mqlite_message_free(m);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* Freeing from inside callbacks: a listener stopped by its own handler (free_user_data then
 * runs when its thread ends), and the store freed from inside an async-send callback (it stops
 * without waiting for itself; its lock is released, so it can be reopened at once). */
static pthread_mutex_t fr_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fr_cv = PTHREAD_COND_INITIALIZER;
static int fr_stage = 0, fr_freed = 0;
static mqlite_listener *fr_listener;

static int32_t stop_self(void *ud, const mqlite_message *m, uint32_t n) {
    (void)ud, (void)m, (void)n;
    mqlite_listener_free(fr_listener);
    pthread_mutex_lock(&fr_mu);
    fr_stage = 1;
    pthread_cond_broadcast(&fr_cv);
    pthread_mutex_unlock(&fr_mu);
    return 0;
}
static void count_free(void *ud) {
    (void)ud;
    pthread_mutex_lock(&fr_mu);
    fr_freed++;
    pthread_cond_broadcast(&fr_cv);
    pthread_mutex_unlock(&fr_mu);
}
static void free_store(void *ud, mqlite_status st, uint64_t id, const mqlite_error *e) {
    (void)st, (void)id, (void)e;
    mqlite_store_free((mqlite_store *)ud);
    pthread_mutex_lock(&fr_mu);
    fr_stage = 2;
    pthread_cond_broadcast(&fr_cv);
    pthread_mutex_unlock(&fr_mu);
}

static void test_free_from_callbacks(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "free-inside");
    /* Listen first, send after: the handler reads fr_listener, which mqlite_queue_listen writes
     * only as it returns (a message already queued could reach the handler before that). */
    OK(mqlite_queue_listen(q, stop_self, NULL, count_free, &fr_listener, ERR));
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"a", 1, NULL, ERR));
    pthread_mutex_lock(&fr_mu);
    while (fr_stage < 1 || fr_freed < 1) pthread_cond_wait(&fr_cv, &fr_mu);
    pthread_mutex_unlock(&fr_mu);
    CHECK(fr_freed == 1);
    mqlite_message *m = NULL;
    OK(mqlite_message_new(NULL, 0, &m, ERR));
    OK(mqlite_queue_send_async(q, m, free_store, s, NULL, ERR));
    pthread_mutex_lock(&fr_mu);
    while (fr_stage < 2) pthread_cond_wait(&fr_cv, &fr_mu);
    pthread_mutex_unlock(&fr_mu);
    CHECK_STATUS(MQLITE_CLOSED, mqlite_queue_send_bytes(q, (const uint8_t *)"a", 1, NULL, ERR));
    mqlite_message_free(m);
    mqlite_queue_free(q);
    s = open_store(dir, NULL); /* not LOCKED */
    mqlite_store_free(s);
}

int main(void) {
    char *dir = temp_dir();
    test_countdown(dir);
    test_close_completes(dir);
    test_reentry(dir);
    test_window(dir);
    test_free_from_callbacks(dir);
    remove_dir(dir);
    return finish("test_async");
}
