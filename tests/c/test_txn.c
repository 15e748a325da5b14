/* Transactions (commit, rollback, free = rollback), DLQ replay with filters, scheduled repeats. */
#include "common.h"

static mqlite_store *open_fast(const char *dir) {
    mqlite_store_options *o = mqlite_store_options_new();
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    OK(mqlite_redelivery_policy_set(p, 6, 0, 0, ERR));
    OK(mqlite_store_options_set_redelivery(o, p, ERR));
    mqlite_store *s = open_store(dir, o);
    mqlite_redelivery_policy_free(p);
    mqlite_store_options_free(o);
    return s;
}

static uint64_t messages(mqlite_queue *q) {
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    return st.messages;
}

static void test_transactions(mqlite_store *s) {
    mqlite_queue *in = open_queue(s, "in"), *out = open_queue(s, "out");
    OK(mqlite_queue_send_bytes(in, (const uint8_t *)"job", 3, NULL, ERR));
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"result", 6, &m, ERR));

    /* commit: consume from `in` and produce to `out` atomically */
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(in, 0, &d, ERR));
    mqlite_transaction *t = NULL;
    OK(mqlite_store_transaction(s, &t, ERR));
    OK(mqlite_transaction_send(t, out, m, ERR));
    OK(mqlite_transaction_send(t, out, m, ERR));
    OK(mqlite_transaction_ack(t, d, ERR));
    CHECK(mqlite_transaction_len(t) == 3);
    CHECK(mqlite_delivery_settled(d));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack(d, ERR));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_transaction_ack(t, d, ERR));
    CHECK(messages(out) == 0); /* nothing before commit */
    uint64_t ids[2] = {0, 0};
    OK(mqlite_transaction_commit(t, ids, ERR));
    CHECK(ids[0] > 0 && ids[1] > ids[0]);
    CHECK(messages(in) == 0 && messages(out) == 2);
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_transaction_commit(t, ids, ERR));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_transaction_send(t, out, m, ERR));
    CHECK(mqlite_transaction_len(t) == 0);
    mqlite_transaction_free(t);
    mqlite_delivery_free(d);

    /* rollback: the send is discarded, the acked delivery fails and comes back */
    OK(mqlite_queue_send_bytes(in, (const uint8_t *)"job2", 4, NULL, ERR));
    OK(mqlite_queue_receive(in, 0, &d, ERR));
    OK(mqlite_store_transaction(s, &t, ERR));
    OK(mqlite_transaction_send(t, out, m, ERR));
    OK(mqlite_transaction_ack(t, d, ERR));
    OK(mqlite_transaction_rollback(t, ERR));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_transaction_rollback(t, ERR));
    mqlite_transaction_free(t);
    mqlite_delivery_free(d);
    CHECK(messages(out) == 2);
    OK(mqlite_queue_receive(in, 2000, &d, ERR));
    CHECK(mqlite_delivery_count(d) == 2);

    /* free without commit = rollback */
    OK(mqlite_store_transaction(s, &t, ERR));
    OK(mqlite_transaction_send(t, out, m, ERR));
    OK(mqlite_transaction_ack(t, d, ERR));
    mqlite_transaction_free(t);
    mqlite_delivery_free(d);
    CHECK(messages(out) == 2);
    OK(mqlite_queue_receive(in, 2000, &d, ERR));
    CHECK(mqlite_delivery_count(d) == 3);
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    uint64_t n;
    OK(mqlite_queue_purge(out, &n, ERR));
    mqlite_message_free(m);
    mqlite_queue_free(in);
    mqlite_queue_free(out);
}

static void test_replay(mqlite_store *s) {
    mqlite_queue *q = open_queue(s, "work"), *dlq = open_queue(s, "DLQ");
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)"w", 1, &ids[i], ERR));
    for (int i = 0; i < 3; i++) {
        mqlite_delivery *d = NULL;
        OK(mqlite_queue_receive(q, 0, &d, ERR));
        OK(mqlite_delivery_reject(d, S("bad"), ERR));
        mqlite_delivery_free(d);
    }
    CHECK(messages(q) == 0 && messages(dlq) == 3);

    mqlite_replay_filter *f = mqlite_replay_filter_new();
    OK(mqlite_replay_filter_set_reason(f, MQLITE_DEAD_LETTER_REJECTED, ERR));
    OK(mqlite_replay_filter_set_original_queue(f, S("work"), ERR));
    OK(mqlite_replay_filter_set_time_range(f, 0, 0, ERR));
    OK(mqlite_replay_filter_set_limit(f, 0, true, ERR));
    uint64_t n = 0;
    OK(mqlite_queue_replay(dlq, f, &n, ERR)); /* dry run */
    CHECK(n == 3 && messages(dlq) == 3);
    OK(mqlite_replay_filter_set_ids(f, &ids[0], 1, ERR));
    OK(mqlite_replay_filter_set_limit(f, 0, false, ERR));
    OK(mqlite_queue_replay(dlq, f, &n, ERR));
    CHECK(n == 1 && messages(dlq) == 2 && messages(q) == 1);
    mqlite_replay_filter_free(f);

    f = mqlite_replay_filter_new();
    OK(mqlite_replay_filter_set_reason(f, MQLITE_DEAD_LETTER_EXPIRED, ERR));
    OK(mqlite_queue_replay(dlq, f, &n, ERR));
    CHECK(n == 0);
    mqlite_replay_filter_free(f);
    f = mqlite_replay_filter_new();
    OK(mqlite_replay_filter_set_target(f, S("elsewhere"), ERR));
    OK(mqlite_replay_filter_set_limit(f, 1, false, ERR));
    OK(mqlite_queue_replay(dlq, f, &n, ERR));
    CHECK(n == 1);
    mqlite_replay_filter_free(f);
    OK(mqlite_queue_replay(dlq, NULL, &n, ERR)); /* NULL filter: all */
    CHECK(n == 1 && messages(dlq) == 0 && messages(q) == 2);
    mqlite_queue *elsewhere = open_queue(s, "elsewhere");
    CHECK(messages(elsewhere) == 1);

    /* replayed messages start over: delivery count 1 */
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    CHECK(mqlite_delivery_count(d) == 1);
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_purge(q, &n, ERR));
    OK(mqlite_queue_purge(elsewhere, &n, ERR));
    mqlite_queue_free(elsewhere);
    mqlite_queue_free(dlq);
    mqlite_queue_free(q);
}

static void test_repeat(mqlite_store *s) {
    mqlite_queue *q = open_queue(s, "ticks");
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"tick", 4, &m, ERR));
    uint64_t period = 0;
    uint32_t repeats = 0;
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_message_repeat(m, &period, &repeats));
    OK(mqlite_message_set_repeat(m, 1, 2, ERR));
    OK(mqlite_message_repeat(m, &period, &repeats));
    CHECK(period == 1 && repeats == 2);
    OK(mqlite_queue_send(q, m, NULL, ERR));
    mqlite_message_free(m);
    /* the first occurrence plus two repeats, each a new message with its own id */
    uint64_t last = 0;
    int got = 0;
    for (int i = 0; i < 3; i++) {
        mqlite_delivery *d = NULL;
        if (mqlite_queue_receive(q, 5000, &d, NULL) != MQLITE_OK) break;
        CHECK(mqlite_delivery_id(d) != last);
        last = mqlite_delivery_id(d);
        OK(mqlite_delivery_ack(d, ERR));
        mqlite_delivery_free(d);
        got++;
    }
    CHECK(got == 3);
    mqlite_delivery *d = NULL;
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 50, &d, ERR));
    mqlite_queue_free(q);
}

int main(void) {
    char *dir = temp_dir();
    mqlite_store *s = open_fast(dir);
    test_transactions(s);
    test_replay(s);
    test_repeat(s);
    mqlite_store_free(s);
    remove_dir(dir);
    return finish("test_txn");
}
