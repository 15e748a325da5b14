/* Sync round trip, headers and properties, batches, settling, consumers, listener, browse,
 * stats, reopen, use after close. */
#include "common.h"

#include <pthread.h>
#include <unistd.h>

static void test_version(void) {
    const char *v = mqlite_version();
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", MQLITE_VERSION_MAJOR, MQLITE_VERSION_MINOR, MQLITE_VERSION_PATCH);
    CHECK(strcmp(v, want) == 0);
    CHECK(strcmp(v, MQLITE_VERSION_STRING) == 0);
    CHECK(strcmp(mqlite_status_str(MQLITE_OK), "ok") == 0);
    CHECK(strcmp(mqlite_status_str(MQLITE_QUEUE_FULL), "queue_full") == 0);
    CHECK(strcmp(mqlite_status_str(12345), "unknown_status") == 0);
}

/* Defaults and limits are the core's (MQLITE_DEFAULT_* / MQLITE_*), and so is validation. */
static void test_options(void) {
    mqlite_store_options *o = mqlite_store_options_new();
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_store_options_set_limits(o, 0, 5ULL << 30, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT,
                 mqlite_store_options_set_limits(o, 0, MQLITE_MAX_SEGMENT_BYTES + 1, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT,
                 mqlite_store_options_set_limits(o, 0, MQLITE_MIN_SEGMENT_BYTES - 1, ERR));
    OK(mqlite_store_options_set_limits(o, 0, MQLITE_MAX_SEGMENT_BYTES, ERR));
    mqlite_store_options_free(o);
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_redelivery_policy_set(p, -2, 0, 0, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT,
                 mqlite_redelivery_policy_set_backoff(p, true, 0.5, 0, false, ERR));
    OK(mqlite_redelivery_policy_set(p, -1, 0, 0, ERR));
    mqlite_redelivery_policy_free(p);
    CHECK(MQLITE_DEFAULT_MAX_BODY_BYTES == 16ULL << 20);
    CHECK(MQLITE_DEFAULT_MAX_REDELIVERIES == 6 && MQLITE_DEFAULT_BACKOFF_MULTIPLIER == 5.0);
    CHECK(strcmp(MQLITE_DEFAULT_DEAD_LETTER_QUEUE, "DLQ") == 0);
    CHECK(strcmp(MQLITE_DEFAULT_DEAD_LETTER_PREFIX, "DLQ.") == 0);
}

static void test_round_trip(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "orders");

    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)"order #1", 8, &m, ERR));
    OK(mqlite_message_set_property_string(m, S("customer"), S("ada"), ERR));
    OK(mqlite_message_set_property_int(m, S("qty"), 42, ERR));
    OK(mqlite_message_set_property_float(m, S("price"), 9.5, ERR));
    OK(mqlite_message_set_property_bool(m, S("gift"), true, ERR));
    OK(mqlite_message_set_property_bytes(m, S("blob"), (const uint8_t *)"\x00\x01\x02", 3, ERR));
    OK(mqlite_message_set_property_int(m, S("qty"), 43, ERR)); /* replaces */
    OK(mqlite_message_set_priority(m, 7, ERR));
    OK(mqlite_message_set_correlation_id(m, S("corr-1"), ERR));
    OK(mqlite_message_set_group(m, S("g1"), ERR));
    OK(mqlite_message_set_ttl_ms(m, 60000, ERR));
    CHECK(mqlite_message_property_count(m) == 5);

    uint64_t id = 0, id2 = 0;
    OK(mqlite_queue_send(q, m, &id, ERR));
    CHECK(id > 0);
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"second", 6, &id2, ERR));
    CHECK(id2 > id);
    mqlite_message_free(m);

    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.depth == 2 && st.messages == 2 && st.in_flight == 0);

    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(q, 1000, &d, ERR));
    CHECK(mqlite_delivery_id(d) == id);
    CHECK(mqlite_delivery_count(d) == 1);
    CHECK(!mqlite_delivery_redelivered(d));
    const mqlite_message *dm = mqlite_delivery_message(d);
    const uint8_t *body;
    size_t len;
    OK(mqlite_message_body(dm, &body, &len));
    CHECK(len == 8 && memcmp(body, "order #1", 8) == 0);
    CHECK(mqlite_message_id(dm) == id);
    CHECK(mqlite_message_priority(dm) == 7);
    CHECK(mqlite_message_timestamp_ms(dm) > 0);
    CHECK(mqlite_message_expires_at_ms(dm) > mqlite_message_timestamp_ms(dm));
    const char *str;
    size_t slen;
    OK(mqlite_message_correlation_id(dm, &str, &slen));
    CHECK(slen == 6 && memcmp(str, "corr-1", 6) == 0);
    OK(mqlite_message_group(dm, &str, &slen));
    CHECK(slen == 2 && memcmp(str, "g1", 2) == 0);
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_message_dedup_key(dm, &str, &slen));
    mqlite_value v;
    OK(mqlite_message_property(dm, S("qty"), &v));
    CHECK(v.kind == MQLITE_VALUE_INT && v.int_value == 43);
    OK(mqlite_message_property(dm, S("customer"), &v));
    CHECK(v.kind == MQLITE_VALUE_STRING && v.len == 3 && memcmp(v.data, "ada", 3) == 0);
    OK(mqlite_message_property(dm, S("price"), &v));
    CHECK(v.kind == MQLITE_VALUE_FLOAT && v.float_value == 9.5);
    OK(mqlite_message_property(dm, S("gift"), &v));
    CHECK(v.kind == MQLITE_VALUE_BOOL && v.bool_value);
    OK(mqlite_message_property(dm, S("blob"), &v));
    CHECK(v.kind == MQLITE_VALUE_BYTES && v.len == 3 && v.data[2] == 2);
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_message_property(dm, S("nope"), &v));
    const char *key;
    size_t klen;
    OK(mqlite_message_property_at(dm, 0, &key, &klen, &v));
    CHECK(klen == 8 && memcmp(key, "customer", 8) == 0);
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_message_property_at(dm, 5, &key, &klen, &v));
    mqlite_dead_letter_info info;
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_message_dead_letter_info(dm, &info));

    OK(mqlite_delivery_ack(d, ERR));
    CHECK(mqlite_delivery_settled(d));
    /* The message stays readable after settling. */
    OK(mqlite_message_body(mqlite_delivery_message(d), &body, &len));
    CHECK(len == 8 && memcmp(body, "order #1", 8) == 0);
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack(d, ERR));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_delivery_nack(d, S("x"), ERR));
    mqlite_delivery_free(d);

    /* release: comes back without counting a failure. */
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    CHECK(mqlite_delivery_id(d) == id2);
    OK(mqlite_delivery_release(d, ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    CHECK(mqlite_delivery_id(d) == id2 && mqlite_delivery_count(d) == 1); /* release does not count */
    /* nack with a delay: not available at once. */
    OK(mqlite_delivery_nack_with_delay(d, S("later"), 60000, ERR));
    mqlite_delivery_free(d);
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive(q, 0, &d, ERR));
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.delayed == 1 && st.acked == 1);

    /* Queue name. */
    const char *qn;
    size_t qnl;
    OK(mqlite_queue_name(q, &qn, &qnl));
    CHECK(qnl == 6 && memcmp(qn, "orders", 6) == 0);

    /* Store path and queue names. */
    const char *path;
    size_t plen;
    OK(mqlite_store_path(s, &path, &plen));
    CHECK(plen > 0 && path[0] == '/');
    mqlite_name_list *names = NULL;
    OK(mqlite_store_queue_names(s, &names, ERR));
    CHECK(mqlite_name_list_count(names) == 1);
    OK(mqlite_name_list_get(names, 0, &qn, &qnl));
    CHECK(qnl == 6 && memcmp(qn, "orders", 6) == 0);
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_name_list_get(names, 1, &qn, &qnl));
    mqlite_name_list_free(names);
    CHECK(!mqlite_queue_is_memory(q));
    mqlite_queue_options *mo = mqlite_queue_options_new();
    OK(mqlite_queue_options_set_durability(mo, MQLITE_DURABILITY_MEMORY, 0, ERR));
    mqlite_queue *mq = NULL;
    OK(mqlite_store_queue_with(s, S("scratch"), mo, &mq, ERR));
    CHECK(mqlite_queue_is_memory(mq));
    mqlite_queue_options_free(mo);
    mqlite_queue_free(mq);

    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    OK(mqlite_store_close(s, ERR)); /* twice is fine */
    mqlite_store_free(s);

    /* Reopen: the delayed message survived. */
    s = open_store(dir, NULL);
    q = open_queue(s, "orders");
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 1);
    mqlite_recovery_report rep;
    OK(mqlite_store_recovery_report(s, &rep, ERR));
    /* After a clean close the open loads the index checkpoint: no record is replayed. */
    CHECK(rep.records == 0);
    CHECK(rep.checkpoint_used);
    CHECK(rep.checkpoint_ignored == NULL && rep.checkpoint_ignored_len == 0);
    uint64_t n = 0;
    OK(mqlite_queue_purge(q, &n, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);

    /* A torn checkpoint (one byte) is ignored, the report says why, the journal is replayed. */
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/CHECKPOINT", dir);
    FILE *f = fopen(ckpt, "wb");
    CHECK(f != NULL);
    CHECK(fputc('x', f) == 'x');
    CHECK(fclose(f) == 0);
    s = open_store(dir, NULL);
    OK(mqlite_store_recovery_report(s, &rep, ERR));
    CHECK(!rep.checkpoint_used);
    CHECK(rep.records > 0);
    CHECK(rep.checkpoint_ignored != NULL);
    CHECK(rep.checkpoint_ignored_len == strlen("torn: 1 bytes"));
    CHECK(memcmp(rep.checkpoint_ignored, "torn: 1 bytes", rep.checkpoint_ignored_len) == 0);
    mqlite_store_free(s);
}

static void test_batches(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "batch");
    enum { N = 50 };
    mqlite_message *ms[N];
    for (int i = 0; i < N; i++) {
        char b[16];
        int l = snprintf(b, sizeof b, "m%d", i);
        OK(mqlite_message_new((const uint8_t *)b, (size_t)l, &ms[i], ERR));
    }
    uint64_t ids[N];
    OK(mqlite_queue_send_batch(q, (const mqlite_message *const *)ms, N, ids, ERR));
    for (int i = 1; i < N; i++) CHECK(ids[i] > ids[i - 1]);
    for (int i = 0; i < N; i++) mqlite_message_free(ms[i]);

    /* browse does not consume */
    mqlite_message *seen[10];
    size_t count = 0;
    OK(mqlite_queue_browse(q, 10, seen, &count, ERR));
    CHECK(count == 10);
    CHECK(mqlite_message_id(seen[0]) == ids[0]);
    for (size_t i = 0; i < count; i++) mqlite_message_free(seen[i]);

    mqlite_delivery *ds[N];
    size_t got = 0;
    OK(mqlite_queue_receive_batch(q, N, 1000, ds, &got, ERR));
    CHECK(got == N);
    CHECK(mqlite_delivery_id(ds[N - 1]) == ids[N - 1]);
    OK(mqlite_queue_ack_batch(q, (mqlite_delivery *const *)ds, got, ERR));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_queue_ack_batch(q, (mqlite_delivery *const *)ds, 1, ERR));
    for (size_t i = 0; i < got; i++) mqlite_delivery_free(ds[i]);
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_queue_receive_batch(q, N, 0, ds, &got, ERR));
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 0 && st.acked == N);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

static void test_consumers(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "cons");
    for (int i = 0; i < 4; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)"x", 1, NULL, ERR));

    /* cumulative: acking the 3rd acks the first 3 */
    mqlite_consumer *c = NULL;
    OK(mqlite_queue_consumer(q, MQLITE_ACK_CUMULATIVE, &c, ERR));
    mqlite_delivery *ds[3];
    size_t got = 0;
    OK(mqlite_consumer_receive_batch(c, 3, 0, ds, &got, ERR));
    CHECK(got == 3);
    CHECK(!mqlite_delivery_settled(ds[0]) && !mqlite_delivery_settled(ds[2]));
    OK(mqlite_delivery_ack(ds[2], ERR));
    /* the earlier deliveries were acked with it: they say so, and cannot be settled again */
    CHECK(mqlite_delivery_settled(ds[0]) && mqlite_delivery_settled(ds[1]));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack(ds[0], ERR));
    for (size_t i = 0; i < got; i++) mqlite_delivery_free(ds[i]);
    mqlite_consumer_free(c);
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.acked == 3 && st.messages == 1);

    /* auto: acked on hand-over */
    OK(mqlite_queue_consumer(q, MQLITE_ACK_AUTO, &c, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_consumer_receive(c, 0, &d, ERR));
    CHECK(mqlite_delivery_settled(d));
    CHECK_STATUS(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    mqlite_consumer_free(c);
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 0);
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_queue_consumer(q, 99, &c, ERR));

    /* freeing an unsettled delivery counts as a failure: it comes back redelivered */
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"y", 1, NULL, ERR));
    mqlite_queue_options *qo = mqlite_queue_options_new();
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    OK(mqlite_redelivery_policy_set(p, 6, 0, 0, ERR));
    OK(mqlite_queue_options_set_redelivery(qo, p, ERR));
    mqlite_queue *q2 = NULL;
    OK(mqlite_store_queue_with(s, S("cons"), qo, &q2, ERR));
    mqlite_queue_options_free(qo);
    mqlite_redelivery_policy_free(p);
    OK(mqlite_queue_receive(q2, 0, &d, ERR));
    mqlite_delivery_free(d);
    OK(mqlite_queue_receive(q2, 1000, &d, ERR));
    CHECK(mqlite_delivery_redelivered(d) && mqlite_delivery_count(d) == 2);
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    mqlite_queue_free(q2);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* ---- listener: counts messages; nacks the first delivery of each, acks redeliveries. */
struct listen_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int acked;
    int calls;
    int freed;
    mqlite_queue *q;
    int sent_from_callback;
};

static int32_t on_message(void *ud, const mqlite_message *m, uint32_t count) {
    struct listen_state *st = ud;
    const uint8_t *b;
    size_t l;
    int ok = mqlite_message_body(m, &b, &l) == MQLITE_OK && l == 5;
    /* Calling back into the same store from a callback works. */
    if (count == 1 && mqlite_queue_send_bytes(st->q, (const uint8_t *)"other", 5, NULL, NULL) != MQLITE_OK) ok = 0;
    pthread_mutex_lock(&st->mu);
    st->calls++;
    if (count == 1) st->sent_from_callback++;
    if (ok && count > 1) st->acked++;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return count == 1 ? 1 : 0;
}

static void free_state(void *ud) {
    struct listen_state *st = ud;
    st->freed++;
}

static void test_listener(const char *dir) {
    mqlite_store_options *so = mqlite_store_options_new();
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    OK(mqlite_redelivery_policy_set(p, 6, 0, 0, ERR));
    OK(mqlite_store_options_set_redelivery(so, p, ERR));
    mqlite_store *s = open_store(dir, so);
    mqlite_store_options_free(so);
    mqlite_redelivery_policy_free(p);
    mqlite_queue *q = open_queue(s, "listen");
    mqlite_queue *other = open_queue(s, "other");
    struct listen_state st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, other, 0};
    for (int i = 0; i < 5; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)"hello", 5, NULL, ERR));
    mqlite_listener *l = NULL;
    OK(mqlite_queue_listen(q, on_message, &st, free_state, &l, ERR));
    pthread_mutex_lock(&st.mu);
    while (st.acked < 5) pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    mqlite_listener_free(l);
    CHECK(st.freed == 1);
    CHECK(st.calls == 10);
    mqlite_stats qs;
    OK(mqlite_queue_stats(q, &qs, ERR));
    CHECK(qs.acked == 5 && qs.messages == 0 && qs.redelivered == 5);
    OK(mqlite_queue_stats(other, &qs, ERR));
    CHECK(qs.messages == 5);
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_queue_listen(q, NULL, &st, free_state, &l, ERR));
    CHECK(st.freed == 1); /* not taken on error */
    mqlite_queue_free(other);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

static void test_after_close(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "closing");
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"z", 1, NULL, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    OK(mqlite_store_close(s, ERR));
    mqlite_error *err = NULL;
    CHECK(mqlite_queue_send_bytes(q, (const uint8_t *)"z", 1, NULL, &err) == MQLITE_CLOSED);
    CHECK(mqlite_error_status(err) == MQLITE_CLOSED);
    CHECK(strlen(mqlite_error_message(err)) > 0);
    mqlite_error_free(err);
    CHECK_STATUS(MQLITE_CLOSED, mqlite_delivery_ack(d, ERR));
    mqlite_queue *q2 = NULL;
    CHECK_STATUS(MQLITE_CLOSED, mqlite_store_queue(s, S("x"), &q2, ERR));
    CHECK_STATUS(MQLITE_CLOSED, mqlite_store_flush(s, ERR));
    mqlite_store_free(s);
    /* Handles outlive the store handle and still answer CLOSED. */
    CHECK_STATUS(MQLITE_CLOSED, mqlite_queue_receive(q, 0, &d, ERR));
    mqlite_delivery_free(d);
    mqlite_queue_free(q);

    /* A second opener becomes a client of the owner (the same API); one that refuses to be a
     * client gets LOCKED naming the owner's pid. */
    s = open_store(dir, NULL);
    uint32_t role = 0, owner_pid = 0;
    OK(mqlite_store_role(s, &role, &owner_pid, ERR));
    CHECK(role == MQLITE_ROLE_OWNER && owner_pid == (uint32_t)getpid());
    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_open_as(o, MQLITE_OPEN_AS_OWNER, 0, ERR));
    mqlite_store *s2 = NULL;
    err = NULL;
    CHECK(mqlite_store_open(dir, strlen(dir), o, &s2, &err) == MQLITE_LOCKED);
    CHECK(s2 == NULL);
    CHECK(strstr(mqlite_error_message(err), "pid") != NULL);
    mqlite_error_free(err);
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_store_options_set_open_as(o, 7, 0, ERR));
    OK(mqlite_store_options_set_open_as(o, MQLITE_OPEN_AS_CLIENT, 5000, ERR));
    OK(mqlite_store_open(dir, strlen(dir), o, &s2, ERR));
    mqlite_store_options_free(o);
    OK(mqlite_store_role(s2, &role, NULL, ERR));
    CHECK(role == MQLITE_ROLE_CLIENT);
    mqlite_queue *cq = open_queue(s2, "via-owner");
    uint64_t cid = 0;
    OK(mqlite_queue_send_bytes(cq, (const uint8_t *)"hi", 2, &cid, ERR));
    mqlite_queue *oq = open_queue(s, "via-owner");
    mqlite_delivery *od = NULL;
    OK(mqlite_queue_receive(oq, 0, &od, ERR));
    CHECK(od != NULL && mqlite_delivery_id(od) == cid);
    OK(mqlite_delivery_ack(od, ERR));
    mqlite_delivery_free(od);
    mqlite_queue_free(cq);
    mqlite_queue_free(oq);
    mqlite_store_free(s2);
    mqlite_store_free(s);
}

/* prefetch: one receive takes the queue's messages into the consumer's buffer (stats say
 * prefetched); freeing the consumer gives the rest back uncounted; ack_sync and the sync queue
 * option settle durably. */
static void test_prefetch(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue_options *qo = mqlite_queue_options_new();
    OK(mqlite_queue_options_set_consuming(qo, 0, MQLITE_ACK_DURABILITY_SYNC, ERR));
    mqlite_queue *q = NULL;
    OK(mqlite_store_queue_with(s, S("prefetch"), qo, &q, ERR));
    mqlite_queue_options_free(qo);
    for (int i = 0; i < 5; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)"p", 1, NULL, ERR));
    mqlite_consumer *c = NULL;
    OK(mqlite_queue_consumer_prefetch(q, MQLITE_ACK_EXPLICIT, 4, &c, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_consumer_receive(c, 0, &d, ERR));
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.in_flight == 1 && st.prefetched == 3 && st.depth == 1);
    OK(mqlite_delivery_ack(d, ERR)); /* the queue's option: durable on return */
    mqlite_delivery_free(d);
    OK(mqlite_consumer_receive(c, 0, &d, ERR));
    OK(mqlite_delivery_ack_sync(d, ERR));
    mqlite_delivery_free(d);
    mqlite_consumer_free(c); /* the 2 prefetched go back, uncounted */
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.prefetched == 0 && st.in_flight == 0 && st.depth == 3 && st.acked == 2);
    OK(mqlite_queue_receive(q, 0, &d, ERR));
    CHECK(d != NULL && mqlite_delivery_count(d) == 1 && !mqlite_delivery_redelivered(d));
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);
}

/* purge_filtered: a dry run counts what the purge then removes, prefetched messages included
 * (not the one handed out); `through` bounds it. A store opened read-only shows the messages,
 * counts them with a dry run and refuses to change anything with MQLITE_READ_ONLY. */
static void test_purge_filtered_and_read_only(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "pf");
    for (int i = 0; i < 8; i++) OK(mqlite_queue_send_bytes(q, (const uint8_t *)"m", 1, NULL, ERR));
    mqlite_consumer *c = NULL;
    OK(mqlite_queue_consumer_prefetch(q, MQLITE_ACK_EXPLICIT, 4, &c, ERR));
    mqlite_delivery *d = NULL;
    OK(mqlite_consumer_receive(c, 0, &d, ERR)); /* 1 in flight, 3 prefetched, 4 ready */
    mqlite_purge_report r;
    memset(&r, 0xff, sizeof r);
    OK(mqlite_queue_purge_filtered(q, 0, true, &r, ERR));
    CHECK(r.matched == 7 && r.purged == 0 && r.last != 0);
    uint64_t last = r.last;
    OK(mqlite_queue_send_bytes(q, (const uint8_t *)"later", 5, NULL, ERR));
    OK(mqlite_queue_purge_filtered(q, last, false, &r, ERR));
    CHECK(r.matched == 7 && r.purged == 7 && r.last == last);
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.messages == 2 && st.in_flight == 1 && st.prefetched == 0);
    OK(mqlite_queue_purge_filtered(q, 0, true, NULL, ERR)); /* NULL out: allowed */
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    mqlite_consumer_free(c);
    mqlite_queue_free(q);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);

    mqlite_store_options *o = mqlite_store_options_new();
    OK(mqlite_store_options_set_read_only(o, true, ERR));
    CHECK_STATUS(MQLITE_NULL_ARGUMENT, mqlite_store_options_set_read_only(NULL, true, ERR));
    s = open_store(dir, o);
    char lock[4096];
    snprintf(lock, sizeof lock, "%s/owner.sock", dir);
    CHECK(access(lock, F_OK) != 0); /* joined no owner, served nobody */
    q = open_queue(s, "pf");
    OK(mqlite_queue_purge_filtered(q, 0, true, &r, ERR));
    CHECK(r.matched == 1 && r.purged == 0);
    CHECK_STATUS(MQLITE_READ_ONLY, mqlite_queue_purge_filtered(q, 0, false, &r, ERR));
    CHECK_STATUS(MQLITE_READ_ONLY, mqlite_queue_send_bytes(q, (const uint8_t *)"x", 1, NULL, ERR));
    mqlite_queue_free(q);
    mqlite_store_free(s);
    /* With repair: refused, a repair writes. */
    OK(mqlite_store_options_set_open_flags(o, true, true, ERR));
    mqlite_store *bad = NULL;
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_store_open(dir, strlen(dir), o, &bad, ERR));
    CHECK(bad == NULL);
    mqlite_store_options_free(o);
}

int main(void) {
    char *dir = temp_dir();
    test_version();
    test_round_trip(dir);
    test_batches(dir);
    test_options();
    test_consumers(dir);
    test_prefetch(dir);
    test_purge_filtered_and_read_only(dir);
    test_listener(dir);
    test_after_close(dir);
    remove_dir(dir);
    return finish("test_basic");
}
