/* Topics from C: fan-out to durable and non-durable subscriptions with one id and the topic,
 * selectors evaluated at publish (bad ones refused with the position), a shared subscription's
 * competing consumers, a durable subscription across reopen, unsubscribe, stats; a selective
 * queue consumer (mqlite_queue_consumer_selector) finding its matches deep in a backlog. */
#include "common.h"

static mqlite_queue *sub(mqlite_store *s, const char *pattern, const char *name, uint32_t flags,
                         const char *selector) {
    mqlite_queue *q = NULL;
    OK(mqlite_store_subscribe(s, S(pattern), name, name ? strlen(name) : 0, flags, selector,
                              selector ? strlen(selector) : 0, NULL, &q, ERR));
    return q;
}

static uint64_t publish(mqlite_topic *t, const char *body, const char *key, int64_t amount) {
    mqlite_message *m = NULL;
    OK(mqlite_message_new((const uint8_t *)body, strlen(body), &m, ERR));
    if (key) OK(mqlite_message_set_property_int(m, S(key), amount, ERR));
    uint64_t id = 0;
    OK(mqlite_topic_publish(t, m, &id, ERR));
    mqlite_message_free(m);
    return id;
}

/* Receives one message (or none) and acks it; returns its body length (-1: none). */
static long take(mqlite_queue *q, uint64_t want_id) {
    mqlite_delivery *d = NULL;
    mqlite_status st = mqlite_queue_receive(q, 0, &d, NULL);
    if (st == MQLITE_TIMEOUT) return -1;
    CHECK(st == MQLITE_OK);
    if (want_id) CHECK(mqlite_delivery_id(d) == want_id);
    const mqlite_message *m = mqlite_delivery_message(d);
    const char *topic;
    size_t tlen;
    OK(mqlite_message_topic(m, &topic, &tlen));
    CHECK(tlen == 11 && memcmp(topic, "orders.eu.x", 11) == 0);
    const uint8_t *body;
    size_t len;
    OK(mqlite_message_body(m, &body, &len));
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    return (long)len;
}

/* The int property "n" of a delivery's message (-1: none). */
static int64_t prop_n(const mqlite_delivery *d) {
    mqlite_value v;
    if (mqlite_message_property(mqlite_delivery_message(d), S("n"), &v) != MQLITE_OK) return -1;
    return v.kind == MQLITE_VALUE_INT ? v.int_value : -1;
}

/* A selective queue consumer (JMS createConsumer(queue, selector)) sees its 3 matches however
 * deep in a 2,000-message backlog they sit (ActiveMQ's consumers starve past the first page),
 * in order; the 1,997 others stay, in their order, for a plain consumer. */
enum { BACKLOG = 2000 };
static void selective_consumer(mqlite_store *s) {
    mqlite_queue *q = open_queue(s, "backlog");
    const int64_t match[3] = {1500, 1800, BACKLOG - 1};
    static mqlite_message *ms[BACKLOG];
    for (int64_t i = 0; i < BACKLOG; i++) {
        OK(mqlite_message_new((const uint8_t *)"m", 1, &ms[i], ERR));
        OK(mqlite_message_set_property_int(ms[i], S("n"), i, ERR));
        int hit = i == match[0] || i == match[1] || i == match[2];
        OK(mqlite_message_set_property_string(ms[i], S("kind"), S(hit ? "audit" : "order"), ERR));
    }
    OK(mqlite_queue_send_batch(q, (const mqlite_message *const *)ms, BACKLOG, NULL, ERR));
    for (int i = 0; i < BACKLOG; i++) mqlite_message_free(ms[i]);

    mqlite_consumer *sel = NULL;
    OK(mqlite_queue_consumer_selector(q, S("kind = 'audit' AND n >= 1000"), MQLITE_ACK_EXPLICIT,
                                      &sel, ERR));
    for (int k = 0; k < 3; k++) {
        mqlite_delivery *d = NULL;
        OK(mqlite_consumer_receive(sel, 0, &d, ERR));
        if (!d) break;
        CHECK(prop_n(d) == match[k]);
        OK(mqlite_delivery_ack(d, ERR));
        mqlite_delivery_free(d);
    }
    mqlite_delivery *none = NULL;
    CHECK_STATUS(MQLITE_TIMEOUT, mqlite_consumer_receive(sel, 0, &none, ERR));
    CHECK(none == NULL);
    mqlite_consumer_free(sel);
    mqlite_stats st;
    OK(mqlite_queue_stats(q, &st, ERR));
    CHECK(st.depth == BACKLOG - 3 && st.in_flight == 0 && st.acked == 3);

    /* The rest, in order, for a plain consumer; nothing lost, nothing twice. */
    mqlite_consumer *plain = NULL;
    OK(mqlite_queue_consumer(q, MQLITE_ACK_EXPLICIT, &plain, ERR));
    int64_t want = 0;
    long got = 0, out_of_order = 0;
    for (;;) {
        mqlite_delivery *d = NULL;
        mqlite_status rs = mqlite_consumer_receive(plain, 0, &d, NULL);
        if (rs == MQLITE_TIMEOUT) break;
        CHECK(rs == MQLITE_OK);
        if (rs != MQLITE_OK) break;
        while (want == match[0] || want == match[1] || want == match[2]) want++;
        if (prop_n(d) != want) out_of_order++;
        want++;
        got++;
        OK(mqlite_delivery_ack(d, ERR));
        mqlite_delivery_free(d);
    }
    CHECK(got == BACKLOG - 3 && out_of_order == 0);
    mqlite_consumer_free(plain);
    mqlite_queue_free(q);
}

int main(void) {
    char *dir = temp_dir();
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *all = sub(s, "orders.>", "all", MQLITE_SUBSCRIBE_DURABLE, NULL);
    mqlite_queue *big = sub(s, "orders.*.x", "big", MQLITE_SUBSCRIBE_DURABLE, "amount > 100");
    mqlite_queue *nd = sub(s, "orders.eu.x", NULL, 0, NULL);
    mqlite_queue *w1 = sub(s, "orders.>", "w", MQLITE_SUBSCRIBE_DURABLE | MQLITE_SUBSCRIBE_SHARED, NULL);
    mqlite_queue *w2 = sub(s, "orders.>", "w", MQLITE_SUBSCRIBE_DURABLE | MQLITE_SUBSCRIBE_SHARED, NULL);
    mqlite_queue *q = NULL;
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT,
                 mqlite_store_subscribe(s, S("orders.>"), S("bad"), 1, S("amount >> 1"), NULL, &q, ERR));
    CHECK_STATUS(MQLITE_INVALID_NAME,
                 mqlite_store_subscribe(s, S("orders..x"), S("bad"), 1, NULL, 0, NULL, &q, ERR));
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT,
                 mqlite_store_subscribe(s, S("orders.>"), S("bad"), 64, NULL, 0, NULL, &q, ERR));

    mqlite_queue *plain = open_queue(s, "orders.eu.x"); /* a queue of the same name: untouched */
    mqlite_topic *t = NULL;
    CHECK_STATUS(MQLITE_INVALID_NAME, mqlite_store_topic(s, S("orders.*"), &t, ERR));
    OK(mqlite_store_topic(s, S("orders.eu.x"), &t, ERR));
    uint64_t a = publish(t, "small", "amount", 5);
    uint64_t b = publish(t, "large!", "amount", 500);
    CHECK(take(all, a) == 5 && take(all, b) == 6 && take(all, 0) == -1);
    CHECK(take(big, b) == 6 && take(big, 0) == -1);
    CHECK(take(nd, a) == 5 && take(nd, b) == 6);
    CHECK(take(plain, 0) == -1);
    mqlite_queue_free(plain);
    /* Shared: the two handles compete for the two messages. */
    CHECK(take(w1, 0) >= 0 && take(w2, 0) >= 0 && take(w1, 0) == -1 && take(w2, 0) == -1);

    mqlite_message *m1 = NULL, *m2 = NULL;
    OK(mqlite_message_new((const uint8_t *)"b1", 2, &m1, ERR));
    OK(mqlite_message_new((const uint8_t *)"b2", 2, &m2, ERR));
    const mqlite_message *batch[2] = {m1, m2};
    uint64_t ids[2] = {0, 0};
    OK(mqlite_topic_publish_batch(t, batch, 2, ids, ERR));
    CHECK(ids[1] == ids[0] + 1);
    OK(mqlite_topic_publish_async(t, m1, NULL, NULL, NULL, ERR));
    OK(mqlite_store_flush(s, ERR));
    mqlite_message_free(m1);
    mqlite_message_free(m2);
    mqlite_topic_stats st;
    OK(mqlite_topic_stats_get(t, &st, ERR));
    CHECK(st.published == 5 && st.unrouted == 0 && st.subscriptions == 4);

    /* A subscription's own consuming options (prefetch, ack durability), as for a queue. */
    mqlite_queue_options *qo = mqlite_queue_options_new();
    OK(mqlite_queue_options_set_consuming(qo, 3, MQLITE_ACK_DURABILITY_SYNC, ERR));
    mqlite_queue *pf = NULL;
    OK(mqlite_store_subscribe(s, S("pf.>"), NULL, 0, 0, NULL, 0, qo, &pf, ERR));
    mqlite_queue_options_free(qo);
    mqlite_topic *pt = NULL;
    OK(mqlite_store_topic(s, S("pf.x"), &pt, ERR));
    for (int i = 0; i < 4; i++) publish(pt, "p", NULL, 0);
    mqlite_delivery *d = NULL;
    OK(mqlite_queue_receive(pf, 0, &d, ERR));
    mqlite_stats ps;
    OK(mqlite_queue_stats(pf, &ps, ERR));
    CHECK(ps.in_flight == 1 && ps.prefetched == 2 && ps.depth == 1);
    OK(mqlite_delivery_ack(d, ERR));
    mqlite_delivery_free(d);
    mqlite_queue_free(pf);
    mqlite_topic_free(pt);

    selective_consumer(s);

    /* Unsubscribe is refused while attached; after the handle is freed it works. */
    CHECK_STATUS(MQLITE_INVALID_ARGUMENT, mqlite_store_unsubscribe(s, S("big"), ERR));
    mqlite_queue_free(big);
    OK(mqlite_store_unsubscribe(s, S("big"), ERR));
    CHECK_STATUS(MQLITE_NOT_FOUND, mqlite_store_unsubscribe(s, S("big"), ERR));
    mqlite_queue_free(all);
    mqlite_queue_free(nd);
    mqlite_queue_free(w1);
    mqlite_queue_free(w2);
    mqlite_topic_free(t);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);

    /* The durable subscription kept its 3 unread messages (the batch and the async one). */
    s = open_store(dir, NULL);
    all = sub(s, "orders.>", "all", MQLITE_SUBSCRIBE_DURABLE, NULL);
    mqlite_stats qs;
    OK(mqlite_queue_stats(all, &qs, ERR));
    CHECK(qs.depth == 3);
    mqlite_queue_free(all);
    mqlite_store_free(s);
    remove_dir(dir);
    return finish("test_topics");
}
