/* mqlite example: a consumer with redelivery to the dead-letter queue. Processes queue
 * "orders" in STORE_DIR: acks good messages, nacks "poison" ones; after the redelivery policy's
 * retries (6 by default, here with 0 ms delays so the example runs instantly) they land in the
 * shared DLQ, which it then reads, printing why each message died.
 *
 * It stops once no message came for IDLE_MS milliseconds (default 200). Another process may
 * own the store meanwhile (this one is then its client): if that owner dies, a delivery it
 * handed out can no longer be settled (MQLITE_DELIVERY_LOST) and comes back, so the consumer
 * just goes on; an ack that failed so may still have been made durable just before the owner
 * died, and is counted "in doubt". It acks with mqlite_delivery_ack_sync (durable when it
 * returns), so its counts hold even if the owner dies; mqlite_delivery_ack is faster (lazy:
 * durable with the next commit, and a message whose lazy ack died with its owner comes back).
 *
 *   cc bindings/c/examples/consumer.c $(pkg-config --cflags --libs mqlite) -o target/consumer
 *   target/consumer STORE_DIR [IDLE_MS]
 */
#include <mqlite.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, mqlite_status st, mqlite_error *err) {
    fprintf(stderr, "%s: %s (%s)\n", what, mqlite_error_message(err), mqlite_status_str(st));
    mqlite_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s STORE_DIR [IDLE_MS]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    /* strtoll, not atoll: "-5", "abc" or a number past the range is refused. */
    int64_t idle_ms = 200;
    if (argc > 2) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(argv[2], &end, 10);
        if (errno || end == argv[2] || *end || v < 0) {
            fprintf(stderr, "consumer: IDLE_MS must be a whole number of milliseconds >= 0, not \"%s\"\n", argv[2]);
            return 2;
        }
        idle_ms = v;
    }
    mqlite_error *err = NULL;

    /* Default policy (6 redeliveries) with no delay between attempts. */
    mqlite_redelivery_policy *policy = mqlite_redelivery_policy_new();
    mqlite_redelivery_policy_set(policy, 6, 0, 0, NULL);
    mqlite_store_options *opts = mqlite_store_options_new();
    mqlite_store_options_set_redelivery(opts, policy, NULL);
    mqlite_store *store = NULL;
    mqlite_status st = mqlite_store_open(dir, strlen(dir), opts, &store, &err);
    mqlite_store_options_free(opts);
    mqlite_redelivery_policy_free(policy);
    if (st != MQLITE_OK) return fail("open", st, err);
    mqlite_queue *orders = NULL, *dlq = NULL;
    if ((st = mqlite_store_queue(store, "orders", 6, &orders, &err)) != MQLITE_OK) return fail("queue", st, err);
    if ((st = mqlite_store_queue(store, "DLQ", 3, &dlq, &err)) != MQLITE_OK) return fail("dlq", st, err);

    int acked = 0, nacked = 0, in_doubt = 0;
    for (;;) {
        mqlite_delivery *d = NULL;
        st = mqlite_queue_receive(orders, idle_ms, &d, &err);
        if (st == MQLITE_TIMEOUT) {
            mqlite_error_free(err);
            err = NULL;
            break;
        }
        if (st != MQLITE_OK) return fail("receive", st, err);
        mqlite_value poison;
        const mqlite_message *m = mqlite_delivery_message(d);
        int is_ack = 0;
        if (mqlite_message_property(m, "poison", 6, &poison) == MQLITE_OK && poison.bool_value) {
            st = mqlite_delivery_nack(d, "cannot parse order", 18, &err);
        } else {
            st = mqlite_delivery_ack_sync(d, &err); /* durable: never delivered again */
            is_ack = 1;
        }
        mqlite_delivery_free(d);
        if (st == MQLITE_DELIVERY_LOST) { /* the owner that handed it out died */
            mqlite_error_free(err);
            err = NULL;
            in_doubt += is_ack;
            continue;
        }
        if (st != MQLITE_OK) return fail("settle", st, err);
        if (is_ack)
            acked++;
        else
            nacked++;
    }

    int dead = 0;
    for (;;) {
        mqlite_delivery *d = NULL;
        if (mqlite_queue_receive(dlq, 0, &d, NULL) != MQLITE_OK) break;
        mqlite_dead_letter_info info;
        const uint8_t *body;
        size_t len;
        const mqlite_message *m = mqlite_delivery_message(d);
        mqlite_message_body(m, &body, &len);
        if (mqlite_message_dead_letter_info(m, &info) == MQLITE_OK) {
            printf("dead letter %.*s from %.*s (ID:%llu): %u deliveries, last failure \"%.*s\"\n", (int)len,
                   (const char *)body, (int)info.original_queue_len, info.original_queue,
                   (unsigned long long)info.original_id, info.delivery_count, (int)info.last_failure_len,
                   info.last_failure);
        }
        /* Not acked (its owner died): it is received again. */
        if (mqlite_delivery_ack_sync(d, NULL) == MQLITE_OK) dead++;
        mqlite_delivery_free(d);
    }
    printf("consumer: acked %d, nacked %d times, %d dead letters\n", acked, nacked, dead);
    if (in_doubt) printf("consumer: %d acks in doubt (their owner died)\n", in_doubt);
    mqlite_queue_free(orders);
    mqlite_queue_free(dlq);
    st = mqlite_store_close(store, &err);
    mqlite_store_free(store);
    if (st != MQLITE_OK) return fail("close", st, err);
    return 0;
}
