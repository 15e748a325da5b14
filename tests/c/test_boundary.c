/* What a C caller passes is checked where it enters (the C face of tests/boundary.rs): headers
 * the journal cannot hold are refused and the store stays openable, huge durations saturate,
 * the manual clock never wraps, a zero initial redelivery delay is followed by the redelivery
 * delay (as ActiveMQ), max_bytes counts body bytes, and a transaction owns the acks added to
 * it (rollback after the consumer is freed succeeds). */
#include "common.h"

#include <unistd.h>

#include <stdint.h>

static void test_oversized_headers(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "q");
    size_t n = (size_t)17 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"m", 1, &m, ERR));
    OK(mqlite_message_set_property_string(m, S("k"), big, n, ERR));
    uint64_t id = 0;
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_queue_send(q, m, &id, ERR));
    mqlite_message_free(m);
    OK(mqlite_message_new((const uint8_t *)"m", 1, &m, ERR));
    OK(mqlite_message_set_correlation_id(m, big, n, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_queue_send(q, m, &id, ERR));
    mqlite_message_free(m);
    free(big);
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"ok", 2, &id, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);
    /* Everything accepted survives a reopen. */
    s = open_store(dir, NULL);
    q = open_queue(s, "q");
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 1);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

static void test_clock_and_durations(const char *dir) {
    mqlite_manual_clock *c = mqlite_manual_clock_new(1000);
    OK(mqlite_manual_clock_advance(c, UINT64_MAX, ERR));
    CHECK(mqlite_manual_clock_now(c) == UINT64_MAX); /* saturates, never wraps */
    OK(mqlite_manual_clock_set(c, 1700000000000ULL, ERR));
    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_manual_clock(o, c, ERR));
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    OK(mqlite_redelivery_policy_set(p, -1, 0, 1000, ERR));
    OK(mqlite_redelivery_policy_set_backoff(p, true, 2.0, 0, false, ERR));
    OK(mqlite_store_options_set_redelivery(o, p, ERR));
    mqlite_redelivery_policy_free(p);
    mqlite_store *s = open_store(dir, o);
    mqlite_store_options_free(o);
    mqlite_queue *q = open_queue(s, "zero-first");
    mqlite_message *m = NULL;
    uint64_t id = 0;
    OK(mqlite_message_new((const uint8_t *)"m", 1, &m, ERR));
    OK(mqlite_message_set_delay_ms(m, UINT64_MAX, ERR));
    OK(mqlite_queue_send(q, m, &id, ERR));
    mqlite_message_free(m);
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"p", 1, &id, ERR));
    /* Redeliveries after 0, 1000, 2000 ms: never earlier. */
    uint64_t waits[] = {0, 0, 1000, 2000};
    for (int i = 0; i < 4; i++) {
        mqlite_delivery *d = NULL;
        if (waits[i] > 0) {
            OK(mqlite_manual_clock_advance(c, waits[i] - 1, ERR));
            CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 0, &d, ERR));
            OK(mqlite_manual_clock_advance(c, 1, ERR));
        }
        OK(mqlite_queue_receive(q, 0, &d, ERR));
        CHECK(d != NULL && mqlite_delivery_id(d) == id);
        if (d) OK(mqlite_delivery_nack(d, S("x"), ERR));
        mqlite_delivery_free(d);
    }
    mqlite_queue_free(q);
    mqlite_store_free(s);
    mqlite_manual_clock_free(c);
}

/* An ack deadline past the clock's range is "none": with the manual clock near UINT64_MAX, an
 * ack timeout of an hour (and of UINT64_MAX ms) must not saturate to a deadline the clock
 * reaches at once (the delivery used to time out and the ack fail). */
static void test_ack_deadline_past_the_clock(const char *dir) {
    mqlite_manual_clock *c = mqlite_manual_clock_new(UINT64_MAX - 5);
    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_manual_clock(o, c, ERR));
    mqlite_store *s = open_store(dir, o);
    mqlite_store_options_free(o);
    uint64_t timeouts[] = {3600000, UINT64_MAX};
    const char *names[] = {"hour", "max"};
    for (int i = 0; i < 2; i++) {
        mqlite_queue_options *qo = mqlite_queue_options_new();
        OK(mqlite_queue_options_set_delivery(qo, timeouts[i], true, MQLITE_GROUP_FAILURE_BLOCK, ERR));
        mqlite_queue *q = NULL;
        OK(mqlite_store_queue_with(s, names[i], strlen(names[i]), qo, &q, ERR));
        mqlite_queue_options_free(qo);
        uint64_t id;
        OK(mqlite_queue_send_bytes(q, (const uint8_t *)"m", 1, &id, ERR));
        mqlite_delivery *d = NULL;
        OK(mqlite_queue_receive(q, 0, &d, ERR));
        OK(mqlite_manual_clock_advance(c, UINT64_MAX, ERR));
        mqlite_stats st;
        OK(mqlite_queue_stats(q, &st, ERR));
        CHECK(st.in_flight == 1);
        if (d) OK(mqlite_delivery_ack(d, ERR));
        mqlite_delivery_free(d);
        mqlite_queue_free(q);
    }
    mqlite_store_free(s);
    mqlite_manual_clock_free(c);
}

static void test_max_bytes_counts_bodies(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue_options *qo = mqlite_queue_options_new();
    OK(mqlite_queue_options_set_limits(qo, 0, 100, MQLITE_OVERFLOW_REJECT, 0, ERR));
    mqlite_queue *q = NULL;
    OK(mqlite_store_queue_with(s, S("bytes"), qo, &q, ERR));
    mqlite_queue_options_free(qo);
    uint64_t id;
    for (int i = 0; i < 10; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)"0123456789", 10, &id, ERR));
    CHECK_STATUS(MQLITE_QUEUE_FULL, mqlite_queue_send_bytes(q, (const uint8_t *)"0123456789", 10, &id, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

static void test_transaction_owns_its_acks(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "txn");
    uint64_t id;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"m", 1, &id, ERR));
    mqlite_consumer *c = NULL;
    OK(mqlite_queue_consumer(q, MQLITE_ACK_EXPLICIT, &c, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_consumer_receive(c, 0, &d, ERR));
    mqlite_transaction *t = NULL;
    OK(mqlite_store_transaction(s, &t, ERR));
    OK(mqlite_transaction_ack(t, d, ERR));
    mqlite_consumer_free(c);
    OK(mqlite_transaction_rollback(t, ERR)); /* the transaction, not the consumer, owns it */
    mqlite_transaction_free(t);
    mqlite_delivery_free(d);
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 1 && st.in_flight == 0);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* A deleted middle segment fails the open with MQLITE_CORRUPT naming that file; a repair
 * open reports it missing and keeps every message of the other segments; the next plain open
 * succeeds (repair sticks). */
static void test_missing_segment_is_named_and_repaired(const char *dir) {
    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_limits(o, 0, 4096, ERR));
    mqlite_store *s = open_store(dir, o);
    mqlite_queue *q = open_queue(s, "segs");
    char body[400];
    memset(body, 'z', sizeof body);
    uint64_t id;
    for (int i = 0; i < 60; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)body, sizeof body, &id, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);
    char path[4200];
    snprintf(path, sizeof path, "%s/0000000000000003.seg", dir);
    CHECK(unlink(path) == 0);
    mqlite_error *err = NULL;
    CHECK(mqlite_store_open(dir, strlen(dir), o, &s, &err) == MQLITE_CORRUPT);
    CHECK(err && strstr(mqlite_error_message(err), "0000000000000003.seg") != NULL);
    CHECK(err && strstr(mqlite_error_message(err), "missing") != NULL);
    mqlite_error_free(err);
    OK(mqlite_store_options_set_open_flags(o, false, true, ERR));
    s = open_store(dir, o);
    mqlite_recovery_report rep;
    OK(mqlite_store_recovery_report(s, &rep, ERR));
    CHECK(rep.missing == 1 && rep.quarantined == 0);
    {
        /* A client reports what its owner's recovery found: the report crosses the socket. */
        mqlite_store_options *co = mqlite_store_options_new();
        OK(mqlite_store_options_set_open_as(co, MQLITE_OPEN_AS_CLIENT, 20000, ERR));
        mqlite_store *c = open_store(dir, co);
        mqlite_recovery_report crep;
        OK(mqlite_store_recovery_report(c, &crep, ERR));
        CHECK(crep.missing == 1 && crep.quarantined == 0 && crep.segments == rep.segments);
        CHECK(crep.records == rep.records && crep.lost_queues == rep.lost_queues);
        mqlite_store_free(c);
        mqlite_store_options_free(co);
    }
    q = open_queue(s, "segs");
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    uint64_t kept = st.messages;
    CHECK(kept > 40 && kept < 60);
    mqlite_queue_free(q);
    mqlite_store_free(s);
    s = open_store(dir, NULL);
    OK(mqlite_store_recovery_report(s, &rep, ERR));
    CHECK(rep.missing == 0);
    q = open_queue(s, "segs");
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == kept);
    mqlite_queue_free(q);
    mqlite_store_free(s);
    mqlite_store_options_free(o);
}

/* browse lists every message with its state and true delivery count; browse_ready only the
 * ready ones. */
static void test_browse_tells_states(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "states");
    uint64_t id;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"waiting", 7, &id, ERR));
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"ready", 5, &id, ERR));
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"delayed", 7, &m, ERR));
    OK(mqlite_message_set_delay_ms(m, 60000, ERR));
    OK(mqlite_queue_send(q, m, &id, ERR));
    mqlite_message_free(m);
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"taken", 5, &id, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    OK(mqlite_delivery_nack_with_delay(d, S("later"), 30000, ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    mqlite_delivery *taken = NULL;
    OK(mqlite_queue_receive(q, 0, &taken, ERR));
    OK(mqlite_delivery_nack_with_delay(d, S("again"), 0, ERR));
    mqlite_delivery_free(d);
    mqlite_message *seen[8];
    size_t n = 0;
    OK(mqlite_queue_browse(q, 8, seen, &n, ERR));
    CHECK(n == 4);
    mqlite_browse_state want[4] = {MQLITE_STATE_READY, MQLITE_STATE_REDELIVERY_WAIT,
                                    MQLITE_STATE_DELAYED, MQLITE_STATE_IN_FLIGHT};
    uint32_t counts[4] = {1, 1, 0, 1};
    for (size_t i = 0; i < n && i < 4; i++) {
        CHECK(mqlite_message_state(seen[i]) == want[i]);
        CHECK(mqlite_message_delivery_count(seen[i]) == counts[i]);
        mqlite_message_free(seen[i]);
    }
    OK(mqlite_queue_browse_ready(q, 8, seen, &n, ERR));
    CHECK(n == 1);
    if (n == 1) {
        CHECK(mqlite_message_state(seen[0]) == MQLITE_STATE_READY);
        mqlite_message_free(seen[0]);
    }
    CHECK(mqlite_message_state(NULL) == MQLITE_STATE_NONE);
    CHECK(mqlite_message_delivery_count(NULL) == 0);
    OK(mqlite_delivery_ack(taken, ERR));
    mqlite_delivery_free(taken);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* Issue 15: close of a store poisoned by a failed write (its directory was deleted while open)
 * returns MQLITE_POISONED with a message saying the store is now closed; a second close is OK. */
static void test_close_of_a_poisoned_store(void) {
    char *parent = temp_dir();
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/s", parent);
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "q");
    uint64_t id = 0;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"kept", 4, &id, ERR));
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    mqlite_error *err = NULL;
    CHECK(mqlite_queue_send_bytes(q, (const uint8_t *)"lost", 4, &id, &err) != MQLITE_OK);
    mqlite_error_free(err);
    err = NULL;
    CHECK(mqlite_store_close(s, &err) == MQLITE_POISONED);
    CHECK(err != NULL && strncmp(mqlite_error_message(err), "the store is closed; it had been poisoned",
                                 strlen("the store is closed; it had been poisoned")) == 0);
    if (err) fprintf(stderr, "close of a poisoned store: %s\n", mqlite_error_message(err));
    mqlite_error_free(err);
    OK(mqlite_store_close(s, ERR));
    CHECK_STATUS(MQLITE_CLOSED, mqlite_queue_send_bytes(q, (const uint8_t *)"x", 1, &id, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);
    remove_dir(parent);
}

int main(void) {
    test_close_of_a_poisoned_store();
    char *dir = temp_dir();
    test_oversized_headers(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_clock_and_durations(dir);
    test_max_bytes_counts_bodies(dir);
    test_transaction_owns_its_acks(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_ack_deadline_past_the_clock(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_missing_segment_is_named_and_repaired(dir);
    remove_dir(dir);
    dir = temp_dir();
    test_browse_tells_states(dir);
    remove_dir(dir);
    return finish("test_boundary");
}
