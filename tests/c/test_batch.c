/* mqlite_delivery_batch: receiving into a batch the caller owns (no handle per delivery),
 * settling its deliveries one by one or all at once, refusing a receive over unsettled ones,
 * clear/free counting unsettled ones as failed deliveries, consumers (auto-ack and explicit),
 * NULL / zero / huge arguments, a closed store, and acks that survive a reopen. */
#include "common.h"

#include <stdint.h>

static void send_n(mqlite_queue *q, int n, uint64_t *ids) {
    for (int i = 0; i < n; i++) {
        char b[16];
        int l = snprintf(b, sizeof b, "m%d", i);
        OK(mqlite_queue_send_bytes(q, (const uint8_t *)b, (size_t)l, ids ? &ids[i] : NULL, ERR));
    }
}

static mqlite_stats stats(mqlite_queue *q) {
    mqlite_stats st;
    memset(&st, 0, sizeof st);
    OK(mqlite_queue_stats(q, &st, ERR));
    return st;
}

/* receive into, settle one by hand, ack the rest at once, receive the rest with a huge max */
static void test_receive_ack(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "into");
    uint64_t ids[10];
    send_n(q, 10, ids);
    mqlite_delivery_batch *b = mqlite_delivery_batch_new();
    CHECK(b != NULL);
    CHECK(mqlite_delivery_batch_count(b) == 0);
    CHECK(mqlite_delivery_batch_get(b, 0) == NULL);
    OK(mqlite_delivery_batch_ack(b, ERR)); /* empty: nothing to do */

    size_t n = 0;
    OK(mqlite_queue_receive_into(q, 4, 1000, b, &n, ERR));
    CHECK(n == 4 && mqlite_delivery_batch_count(b) == 4);
    for (size_t i = 0; i < n; i++) {
        mqlite_delivery *d = mqlite_delivery_batch_get(b, i);
        CHECK(d != NULL && mqlite_delivery_id(d) == ids[i]);
        CHECK(mqlite_delivery_count(d) == 1 && !mqlite_delivery_settled(d));
        size_t len = 0;
        const uint8_t *body = NULL;
        OK(mqlite_message_body(mqlite_delivery_message(d), &body, &len));
        char want[32];
        snprintf(want, sizeof want, "m%zu", i);
        CHECK(len == strlen(want) && memcmp(body, want, len) == 0);
    }
    CHECK(mqlite_delivery_batch_get(b, 4) == NULL);
    CHECK(mqlite_delivery_batch_get(b, SIZE_MAX) == NULL);
    /* one settled through its handle; a free of a batch's delivery is a no-op (the batch owns it) */
    OK(mqlite_delivery_ack(mqlite_delivery_batch_get(b, 0), ERR));
    mqlite_delivery_free(mqlite_delivery_batch_get(b, 1));
    CHECK(mqlite_delivery_id(mqlite_delivery_batch_get(b, 1)) == ids[1]);
    OK(mqlite_delivery_batch_ack(b, ERR));
    for (size_t i = 0; i < n; i++) CHECK(mqlite_delivery_settled(mqlite_delivery_batch_get(b, i)));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack(mqlite_delivery_batch_get(b, 2), ERR));
    OK(mqlite_delivery_batch_ack(b, ERR)); /* all settled: nothing left to ack */
    mqlite_stats st = stats(q);
    CHECK(st.acked == 4 && st.messages == 6 && st.in_flight == 0);

    /* a huge max only bounds the count */
    OK(mqlite_queue_receive_into(q, SIZE_MAX, 1000, b, &n, ERR));
    CHECK(n == 6 && mqlite_delivery_batch_count(b) == 6);
    CHECK(mqlite_delivery_id(mqlite_delivery_batch_get(b, 0)) == ids[4]);
    CHECK(mqlite_delivery_id(mqlite_delivery_batch_get(b, 5)) == ids[9]);

    /* unsettled deliveries in the batch: a new receive is refused and changes nothing */
    OK(mqlite_delivery_release(mqlite_delivery_batch_get(b, 0), ERR));
    size_t n2 = 77;
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_queue_receive_into(q, 4, 0, b, &n2, ERR));
    CHECK(n2 == 77 && mqlite_delivery_batch_count(b) == 6);
    CHECK(!mqlite_delivery_settled(mqlite_delivery_batch_get(b, 1)));
    st = stats(q);
    CHECK(st.in_flight == 5 && st.depth == 1);

    OK(mqlite_delivery_batch_ack_sync(b, ERR));
    /* the released one comes back, and is the only one */
    OK(mqlite_queue_receive_into(q, 4, 1000, b, &n, ERR));
    CHECK(n == 1 && mqlite_delivery_id(mqlite_delivery_batch_get(b, 0)) == ids[4]);
    OK(mqlite_delivery_batch_ack_sync(b, ERR));
    /* nothing left: TIMEOUT, and the batch keeps what it held */
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive_into(q, 4, 0, b, &n2, ERR));
    CHECK(mqlite_delivery_batch_count(b) == 1);
    st = stats(q);
    CHECK(st.acked == 10 && st.messages == 0);
    mqlite_delivery_batch_free(b);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);

    /* the acks survive a reopen */
    s = open_store(dir, NULL);
    q = open_queue(s, "into");
    st = stats(q);
    CHECK(st.messages == 0);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);
}

/* clear and free drop unsettled deliveries as failed deliveries: the messages come back */
static void test_clear_free(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "clear");
    send_n(q, 4, NULL);
    mqlite_delivery_batch *b = mqlite_delivery_batch_new();
    size_t n = 0;
    OK(mqlite_queue_receive_into(q, 2, 1000, b, &n, ERR));
    CHECK(n == 2);
    mqlite_delivery_batch_clear(b);
    CHECK(mqlite_delivery_batch_count(b) == 0);
    mqlite_stats st = stats(q);
    CHECK(st.in_flight == 0 && st.messages == 4 && st.acked == 0);
    OK(mqlite_queue_receive_into(q, 4, 1000, b, &n, ERR));
    CHECK(n >= 2); /* the two failed ones may wait out their redelivery delay */
    mqlite_delivery_batch_free(b); /* unsettled: failed deliveries again */
    st = stats(q);
    CHECK(st.in_flight == 0 && st.messages == 4 && st.acked == 0);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);
}

/* consumers: auto-ack deliveries arrive settled; an explicit consumer's are acked at once */
static void test_consumers(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "cons");
    send_n(q, 6, NULL);
    mqlite_delivery_batch *b = mqlite_delivery_batch_new();
    mqlite_consumer *auto_c = NULL, *c = NULL;
    OK(mqlite_queue_consumer_prefetch(q, MQLITE_ACK_AUTO, 1, &auto_c, ERR));
    OK(mqlite_queue_consumer_prefetch(q, MQLITE_ACK_EXPLICIT, 1, &c, ERR));
    size_t n = 0;
    OK(mqlite_consumer_receive_into(auto_c, 3, 1000, b, &n, ERR));
    CHECK(n == 3 && mqlite_delivery_settled(mqlite_delivery_batch_get(b, 2)));
    OK(mqlite_delivery_batch_ack(b, ERR)); /* nothing to ack */
    OK(mqlite_consumer_receive_into(c, 3, 1000, b, &n, ERR)); /* the auto-acked ones count as settled */
    CHECK(n == 3 && !mqlite_delivery_settled(mqlite_delivery_batch_get(b, 0)));
    OK(mqlite_delivery_batch_ack_sync(b, ERR));
    mqlite_stats st = stats(q);
    CHECK(st.messages == 0 && st.acked == 6);
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_consumer_receive_into(c, 3, 0, b, &n, ERR));
    mqlite_consumer_free(auto_c);
    mqlite_consumer_free(c);
    mqlite_delivery_batch_free(b);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);
}

/* NULL and zero arguments; a closed store */
static void test_bad_input(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "bad");
    mqlite_consumer *c = NULL;
    OK(mqlite_queue_consumer(q, MQLITE_ACK_EXPLICIT, &c, ERR));
    mqlite_delivery_batch *b = mqlite_delivery_batch_new();
    size_t n = 0;
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_queue_receive_into(NULL, 1, 0, b, &n, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_queue_receive_into(q, 1, 0, NULL, &n, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_queue_receive_into(q, 1, 0, b, NULL, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_queue_receive_into(q, 0, 0, b, &n, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_consumer_receive_into(NULL, 1, 0, b, &n, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_consumer_receive_into(c, 1, 0, NULL, &n, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_consumer_receive_into(c, 1, 0, b, NULL, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_consumer_receive_into(c, 0, 0, b, &n, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_delivery_batch_ack(NULL, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_delivery_batch_ack_sync(NULL, ERR));
    CHECK(mqlite_delivery_batch_count(NULL) == 0);
    CHECK(mqlite_delivery_batch_get(NULL, 0) == NULL);
    mqlite_delivery_batch_clear(NULL);
    mqlite_delivery_batch_free(NULL);

    /* a batch received before close: acking after close fails with CLOSED, the message
     * comes back after a reopen; receiving after close fails with CLOSED */
    send_n(q, 2, NULL);
    OK(mqlite_queue_receive_into(q, 2, 1000, b, &n, ERR));
    CHECK(n == 2);
    OK(mqlite_delivery_ack_sync(mqlite_delivery_batch_get(b, 0), ERR));
    OK(mqlite_store_close(s, ERR));
    CHECK_STATUS(MQLITE_CLOSED, mqlite_delivery_batch_ack(b, ERR));
    mqlite_delivery_batch_clear(b);
    CHECK_STATUS(MQLITE_CLOSED, mqlite_queue_receive_into(q, 2, 0, b, &n, ERR));
    CHECK_STATUS(MQLITE_CLOSED, mqlite_consumer_receive_into(c, 2, 0, b, &n, ERR));
    mqlite_delivery_batch_free(b);
    mqlite_consumer_free(c);
    mqlite_queue_free(q);
    mqlite_store_free(s);

    s = open_store(dir, NULL);
    q = open_queue(s, "bad");
    mqlite_stats st = stats(q);
    CHECK(st.messages == 1);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);
}

int main(void) {
    char *dir = temp_dir();
    test_receive_ack(dir);
    test_clear_free(dir);
    test_consumers(dir);
    test_bad_input(dir);
    remove_dir(dir);
    return finish("test_batch");
}
