/* Redelivery to the dead-letter queue with the default policy (6 redeliveries), its delays set
 * to 0 through the options so no timer has to be waited for; reject; the individual strategy. */
#include "common.h"

static mqlite_store *open_with_zero_delays(const char *dir, uint32_t strategy, const char *dlq) {
    mqlite_store_options *o = mqlite_store_options_new();
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    /* The default max_redeliveries (6); only the delays change. */
    OK(mqlite_redelivery_policy_set(p, 6, 0, 0, ERR));
    OK(mqlite_store_options_set_redelivery(o, p, ERR));
    OK(mqlite_store_options_set_dead_letter(o, strategy, dlq, strlen(dlq), ERR));
    mqlite_store *s = open_store(dir, o);
    mqlite_redelivery_policy_free(p);
    mqlite_store_options_free(o);
    return s;
}

static void test_max_redeliveries(const char *dir) {
    mqlite_store *s = open_with_zero_delays(dir, MQLITE_DEAD_LETTER_SHARED, "");
    mqlite_queue *q = open_queue(s, "orders");
    uint64_t id = 0;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"poison", 6, &id, ERR));
    /* 1 delivery + 6 redeliveries = 7 failures; the 7th dead-letters. */
    for (uint32_t n = 1; n <= 7; n++) {
        mqlite_delivery *d = NULL;
        OK(mqlite_queue_receive(q, 2000, &d, ERR));
        CHECK(mqlite_delivery_id(d) == id);
        CHECK(mqlite_delivery_count(d) == n);
        CHECK(mqlite_delivery_redelivered(d) == (n > 1));
        char why[32];
        int l = snprintf(why, sizeof why, "failure %u", n);
        OK(mqlite_delivery_nack(d, why, (size_t)l, ERR));
        mqlite_delivery_free(d);
    }
    mqlite_delivery *d = NULL;
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 0, &d, ERR));
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 0 && st.dead_lettered == 1 && st.redelivered == 6);

    /* The DLQ is an ordinary queue named "DLQ". */
    mqlite_queue *dlq = open_queue(s, "DLQ");
    OK(mqlite_queue_receive(dlq, 1000, &d, ERR));
    const mqlite_message *m = mqlite_delivery_message(d);
    const uint8_t *body;
    size_t len;
    OK(mqlite_message_body(m, &body, &len));
    CHECK(len == 6 && memcmp(body, "poison", 6) == 0);
    mqlite_dead_letter_info info;
    OK(mqlite_message_dead_letter_info(m, &info));
    CHECK(info.reason == MQLITE_DEAD_LETTER_MAX_REDELIVERIES);
    CHECK(info.original_id == id);
    CHECK(info.original_queue_len == 6 && memcmp(info.original_queue, "orders", 6) == 0);
    CHECK(info.last_failure_len == 9 && memcmp(info.last_failure, "failure 7", 9) == 0);
    CHECK(info.delivery_count == 7);
    CHECK(info.first_failure_ms > 0 && info.last_failure_ms >= info.first_failure_ms);
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);

    /* Review r5 #11: a nack refused for its reason (over 32 KiB) leaves the delivery held and
     * unsettled (it used to settle it, as a reject refused the same way did not): the same
     * handle still settles it. */
    {
        size_t n = 32 * 1024 + 1;
        char *long_reason = malloc(n);
        CHECK(long_reason != NULL);
        memset(long_reason, 'r', n);
        OK(mqlite_queue_send_bytes(q, (const uint8_t *)"held", 4, &id, ERR));
        OK(mqlite_queue_receive(q, 0, &d, ERR));
        mqlite_stats before, st;
        OK(mqlite_queue_stats(q, &before, ERR));
        CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_delivery_nack(d, long_reason, n, ERR));
        CHECK_STATUS(MQLITE_INVALID_ARGUMENT,
                     mqlite_delivery_nack_with_delay(d, long_reason, n, 10, ERR));
        CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_delivery_reject(d, long_reason, n, ERR));
        OK(mqlite_queue_stats(q, &st, ERR));
        CHECK(st.in_flight == 1 && st.redelivered == before.redelivered &&
              st.dead_lettered == before.dead_lettered);
        OK(mqlite_delivery_ack(d, ERR));
        mqlite_delivery_free(d);
        free(long_reason);
    }

    /* reject: straight to the DLQ */
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"bad", 3, &id, ERR));
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    OK(mqlite_delivery_reject(d, S("malformed"), ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_receive(dlq, 1000, &d, ERR));
    OK(mqlite_message_dead_letter_info(mqlite_delivery_message(d), &info));
    CHECK(info.reason == MQLITE_DEAD_LETTER_REJECTED && info.original_id == id && info.delivery_count == 1);
    CHECK(info.last_failure_len == 9 && memcmp(info.last_failure, "malformed", 9) == 0);
    /* Review r4 #16: a reject of a dead letter (held from a dead-letter queue) dropped it
     * silently. Refused with MQLITE_INVALID_ARGUMENT, the delivery stays held through the same
     * handle: a release gives it back, an ack deletes it. */
    {
        mqlite_error *e = NULL;
        CHECK(mqlite_delivery_reject(d, S("again"), &e) == MQLITE_INVALID_ARGUMENT);
        CHECK(e != NULL && strstr(mqlite_error_message(e), "cannot be dead-lettered again") != NULL);
        mqlite_error_free(e);
    }
    mqlite_stats dst;
    OK(mqlite_queue_stats(dlq, &dst, ERR));
    CHECK(dst.in_flight == 1 && dst.messages == 1 && dst.dead_lettered == 0 && dst.discarded == 0);
    OK(mqlite_delivery_release(d, ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_receive(dlq, 0, &d, ERR));
    CHECK(mqlite_delivery_id(d) == id);
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_delivery_reject(d, S("again"), ERR));
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_stats(dlq, &dst, ERR));
    CHECK(dst.messages == 0 && dst.discarded == 0 && dst.dead_lettered == 0);
    mqlite_queue_free(dlq);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

static void test_individual(const char *dir) {
    mqlite_store *s = open_with_zero_delays(dir, MQLITE_DEAD_LETTER_INDIVIDUAL, "");
    mqlite_queue *q = open_queue(s, "jobs");
    /* per-queue override: max_redeliveries 0, the first failure dead-letters */
    mqlite_queue_options *qo = mqlite_queue_options_new();
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    OK(mqlite_redelivery_policy_set(p, 0, 0, 0, ERR));
    OK(mqlite_queue_options_set_redelivery(qo, p, ERR));
    mqlite_queue *q0 = NULL;
    OK(mqlite_store_queue_with(s, S("jobs"), qo, &q0, ERR));
    mqlite_redelivery_policy_free(p);
    mqlite_queue_options_free(qo);
    OK(mqlite_queue_send_bytes(q0, (const uint8_t *)"j", 1, NULL, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(q0, 0, &d, ERR));
    OK(mqlite_delivery_nack(d, NULL, 0, ERR));
    mqlite_delivery_free(d);
    mqlite_queue *dlq = open_queue(s, "DLQ.jobs");
    mqlite_message *seen[4];
    size_t n = 0;
    OK(mqlite_queue_browse(dlq, 4, seen, &n, ERR));
    CHECK(n == 1);
    if (n == 1) {
        mqlite_dead_letter_info info;
        OK(mqlite_message_dead_letter_info(seen[0], &info));
        CHECK(info.reason == MQLITE_DEAD_LETTER_MAX_REDELIVERIES && info.delivery_count == 1);
        mqlite_message_free(seen[0]);
    }
    mqlite_queue_free(dlq);
    mqlite_queue_free(q0);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* The untouched default policy (1 s delays) with a manual clock: time is moved, not waited for. */
static void test_default_policy_manual_clock(const char *dir) {
    mqlite_manual_clock *clock = mqlite_manual_clock_new(1700000000000ULL);
    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_manual_clock(o, clock, ERR));
    mqlite_store *s = open_store(dir, o);
    mqlite_store_options_free(o);
    mqlite_queue *q = open_queue(s, "clocked");
    uint64_t id = 0;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"tick", 4, &id, ERR));
    for (uint32_t n = 1; n <= 7; n++) {
        mqlite_delivery *d = NULL;
        OK(mqlite_queue_receive(q, 0, &d, ERR));
        CHECK(mqlite_delivery_count(d) == n);
        OK(mqlite_delivery_nack(d, S("no"), ERR));
        mqlite_delivery_free(d);
        if (n < 7) {
            /* waiting for its redelivery delay: not available before the clock moves 1 s */
            CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 0, &d, ERR));
            OK(mqlite_manual_clock_advance(clock, 999, ERR));
            CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 0, &d, ERR));
            OK(mqlite_manual_clock_advance(clock, 1, ERR));
        }
    }
    mqlite_queue *dlq = open_queue(s, "DLQ");
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(dlq, 0, &d, ERR));
    mqlite_dead_letter_info info;
    OK(mqlite_message_dead_letter_info(mqlite_delivery_message(d), &info));
    CHECK(info.reason == MQLITE_DEAD_LETTER_MAX_REDELIVERIES && info.delivery_count == 7 && info.original_id == id);
    CHECK(info.first_failure_ms == 1700000000000ULL);
    CHECK(info.last_failure_ms == mqlite_manual_clock_now(clock));
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    mqlite_queue_free(dlq);
    mqlite_queue_free(q);
    mqlite_store_free(s);
    mqlite_manual_clock_free(clock);
}

/* How many dead letters the shared DLQ holds; each must carry `id`. */
static size_t dead_letters_with_id(mqlite_store *s, uint64_t id) {
    mqlite_queue *dlq = open_queue(s, "DLQ");
    mqlite_message *seen[4];
    size_t n = 0;
    OK(mqlite_queue_browse(dlq, 4, seen, &n, ERR));
    for (size_t i = 0; i < n; i++) {
        CHECK(mqlite_message_id(seen[i]) == id);
        mqlite_message_free(seen[i]);
    }
    mqlite_queue_free(dlq);
    return n;
}

/* A message keeps its id through dead-lettering and replay, as ActiveMQ keeps the JMSMessageID
 * (idempotent consumers key on it), also across a reopen: recovery does not take the replayed
 * message for its earlier stay in the queue. */
static void test_id_kept_through_dlq_and_replay(const char *dir) {
    mqlite_store *s = open_with_zero_delays(dir, MQLITE_DEAD_LETTER_SHARED, "");
    mqlite_queue *q = open_queue(s, "orders");
    uint64_t id = 0;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"poison", 6, &id, ERR));
    CHECK(id != 0);
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    OK(mqlite_delivery_reject(d, S("bad"), ERR));
    mqlite_delivery_free(d);
    CHECK(dead_letters_with_id(s, id) == 1);
    mqlite_queue *dlq = open_queue(s, "DLQ");
    uint64_t moved = 0;
    OK(mqlite_queue_replay(dlq, NULL, &moved, ERR));
    CHECK(moved == 1);
    /* One event, one counter (review r5 #14): the dead letter leaves the DLQ as replayed_out
     * and arrives as replayed, not also as enqueued; both queues' books balance. */
    mqlite_stats qs, ds;
    OK(mqlite_queue_stats(q, &qs, ERR));
    OK(mqlite_queue_stats(dlq, &ds, ERR));
    CHECK(ds.enqueued == 1 && ds.replayed_out == 1 && ds.messages == 0);
    CHECK(qs.enqueued == 1 && qs.replayed == 1 && qs.dead_lettered == 1 && qs.messages == 1);
    CHECK(ds.enqueued + ds.replayed - (ds.acked + ds.dead_lettered + ds.expired + ds.discarded +
                                       ds.replayed_out) == ds.messages);
    CHECK(qs.enqueued + qs.replayed - (qs.acked + qs.dead_lettered + qs.expired + qs.discarded +
                                       qs.replayed_out) == qs.messages);
    mqlite_queue_free(dlq);
    mqlite_queue_free(q);
    mqlite_store_free(s);

    s = open_with_zero_delays(dir, MQLITE_DEAD_LETTER_SHARED, "");
    q = open_queue(s, "orders");
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    CHECK(mqlite_delivery_id(d) == id);
    CHECK(mqlite_message_id(mqlite_delivery_message(d)) == id);
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    CHECK(dead_letters_with_id(s, id) == 0);
    mqlite_queue_free(q);
    mqlite_store_free(s);

    /* The ack holds: nothing comes back at the next open. */
    s = open_with_zero_delays(dir, MQLITE_DEAD_LETTER_SHARED, "");
    q = open_queue(s, "orders");
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 0, &d, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

int main(void) {
    char *dir = temp_dir();
    test_max_redeliveries(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_individual(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_default_policy_manual_clock(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_id_kept_through_dlq_and_replay(dir);
    remove_dir(dir);
    return finish("test_dlq");
}
