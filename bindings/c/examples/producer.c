/* mqlite example: a producer. Sends messages to queue "orders" in STORE_DIR: some with a
 * blocking durable send, the rest with async sends whose callbacks are counted; every tenth
 * message is marked poison (the consumer example rejects it after retries).
 *
 *   cc bindings/c/examples/producer.c $(pkg-config --cflags --libs mqlite) -lpthread -o target/producer
 *   target/producer STORE_DIR [COUNT]
 */
#include <mqlite.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct completions {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int failed;
};

/* Runs on a library thread, exactly once per accepted async send. */
static void on_sent(void *user_data, mqlite_status status, uint64_t id, const mqlite_error *error) {
    struct completions *c = user_data;
    (void)id;
    pthread_mutex_lock(&c->mu);
    if (status != MQLITE_OK) {
        fprintf(stderr, "async send failed: %s\n", mqlite_error_message(error));
        c->failed++;
    }
    if (--c->pending == 0) pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int fail(const char *what, mqlite_status st, mqlite_error *err) {
    fprintf(stderr, "%s: %s (%s)\n", what, mqlite_error_message(err), mqlite_status_str(st));
    mqlite_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s STORE_DIR [COUNT]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    /* strtol, not atoi: "-5", "abc" or a count past INT_MAX is refused, not sent as garbage. */
    long count = 100;
    if (argc > 2) {
        char *end = NULL;
        errno = 0;
        count = strtol(argv[2], &end, 10);
        if (errno || end == argv[2] || *end || count < 0 || count > INT_MAX) {
            fprintf(stderr, "producer: COUNT must be a whole number from 0 to %d, not \"%s\"\n", INT_MAX, argv[2]);
            return 2;
        }
    }
    mqlite_error *err = NULL;
    mqlite_store *store = NULL;
    mqlite_status st = mqlite_store_open(dir, strlen(dir), NULL, &store, &err);
    if (st != MQLITE_OK) return fail("open", st, err);
    mqlite_queue *orders = NULL;
    st = mqlite_store_queue(store, "orders", 6, &orders, &err);
    if (st != MQLITE_OK) return fail("queue", st, err);

    struct completions done = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    for (int i = 0; i < count; i++) {
        char body[64];
        int len = snprintf(body, sizeof body, "order #%d", i);
        mqlite_message *m = NULL;
        st = mqlite_message_new((const uint8_t *)body, (size_t)len, &m, &err);
        if (st != MQLITE_OK) return fail("message", st, err);
        mqlite_message_set_property_int(m, "n", 1, i, NULL);
        mqlite_message_set_property_bool(m, "poison", 6, i % 10 == 9, NULL);
        if (i % 2 == 0) {
            uint64_t id = 0;
            st = mqlite_queue_send(orders, m, &id, &err); /* durable when it returns */
            if (st != MQLITE_OK) return fail("send", st, err);
        } else {
            pthread_mutex_lock(&done.mu);
            done.pending++;
            pthread_mutex_unlock(&done.mu);
            st = mqlite_queue_send_async(orders, m, on_sent, &done, NULL, &err);
            if (st != MQLITE_OK) { /* not accepted: the callback will not run */
                pthread_mutex_lock(&done.mu);
                done.pending--;
                pthread_mutex_unlock(&done.mu);
                mqlite_message_free(m);
                return fail("send_async", st, err);
            }
        }
        mqlite_message_free(m); /* sends copy the message */
    }
    pthread_mutex_lock(&done.mu);
    while (done.pending > 0) pthread_cond_wait(&done.cv, &done.mu);
    pthread_mutex_unlock(&done.mu);

    mqlite_stats stats;
    mqlite_queue_stats(orders, &stats, NULL);
    printf("producer: sent %ld messages (%d async failures); queue holds %llu\n", count, done.failed,
           (unsigned long long)stats.messages);
    mqlite_queue_free(orders);
    st = mqlite_store_close(store, &err);
    mqlite_store_free(store);
    if (st != MQLITE_OK) return fail("close", st, err);
    return done.failed == 0 ? 0 : 1;
}
