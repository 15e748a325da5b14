/* T12, the C ABI contract: every exported function with each pointer argument NULL, bad UTF-8
 * in each string, SIZE_MAX lengths, and after close. Each case is one line of the table below:
 * the status it must return (or the value, for the few functions that return one); nothing may
 * abort. tests/c/run.sh checks that every function declared in mqlite.h appears in this file. */
#include "common.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define BAD "\xff\xfe" /* not UTF-8 */
#define NUL_ MQLITE_NULL_ARGUMENT
#define INV MQLITE_INVALID_ARGUMENT
#define UTF MQLITE_INVALID_UTF8
#define T(want, expr) CHECK_STATUS(want, expr)
#define V(cond) CHECK(cond)

static void cb(void *ud, mqlite_status st, uint64_t id, const mqlite_error *e) {
    (void)ud, (void)st, (void)id, (void)e;
}
static int32_t handler(void *ud, const mqlite_message *m, uint32_t n) {
    (void)ud, (void)m, (void)n;
    return 0;
}

static const uint8_t B[] = "body";
static const char K[] = "key";

static void errors_and_version(void) {
    V(mqlite_version() != NULL);
    V(strcmp(mqlite_status_str(999), "unknown_status") == 0);
    V(strcmp(mqlite_status_str(MQLITE_NULL_ARGUMENT), "null_argument") == 0);
    V(mqlite_error_status(NULL) == MQLITE_NULL_ARGUMENT);
    V(strcmp(mqlite_error_message(NULL), "") == 0);
    mqlite_error_free(NULL);
}

static void options(void) {
    mqlite_store_options *so = mqlite_store_options_new();
    mqlite_queue_options *qo = mqlite_queue_options_new();
    mqlite_redelivery_policy *p = mqlite_redelivery_policy_new();
    V(so && qo && p);
    mqlite_store_options_free(NULL);
    mqlite_queue_options_free(NULL);
    mqlite_redelivery_policy_free(NULL);

    T(NUL_, mqlite_store_options_set_durability(NULL, MQLITE_DURABILITY_SYNC, 0, ERR));
    T(INV, mqlite_store_options_set_durability(so, 99, 0, ERR));
    T(MQLITE_OK, mqlite_store_options_set_durability(so, MQLITE_DURABILITY_BATCHED, 5, ERR));
    T(NUL_, mqlite_store_options_set_redelivery(NULL, p, ERR));
    T(NUL_, mqlite_store_options_set_redelivery(so, NULL, ERR));
    T(NUL_, mqlite_store_options_set_dead_letter(NULL, MQLITE_DEAD_LETTER_SHARED, S("DLQ"), ERR));
    T(NUL_, mqlite_store_options_set_dead_letter(so, MQLITE_DEAD_LETTER_SHARED, NULL, 3, ERR));
    T(UTF, mqlite_store_options_set_dead_letter(so, MQLITE_DEAD_LETTER_SHARED, S(BAD), ERR));
    T(INV, mqlite_store_options_set_dead_letter(so, MQLITE_DEAD_LETTER_SHARED, "DLQ", SIZE_MAX, ERR));
    T(INV, mqlite_store_options_set_dead_letter(so, 42, S("DLQ"), ERR));
    T(MQLITE_OK, mqlite_store_options_set_dead_letter(so, MQLITE_DEAD_LETTER_DISCARD, NULL, 0, ERR));
    mqlite_manual_clock *clock = mqlite_manual_clock_new(5);
    V(clock != NULL);
    T(NUL_, mqlite_store_options_set_manual_clock(NULL, clock, ERR));
    T(NUL_, mqlite_store_options_set_manual_clock(so, NULL, ERR));
    T(MQLITE_OK, mqlite_store_options_set_manual_clock(so, clock, ERR));
    T(NUL_, mqlite_manual_clock_advance(NULL, 1, ERR));
    T(NUL_, mqlite_manual_clock_set(NULL, 1, ERR));
    T(MQLITE_OK, mqlite_manual_clock_set(clock, 10, ERR));
    T(MQLITE_OK, mqlite_manual_clock_advance(clock, UINT64_MAX - 10, ERR));
    V(mqlite_manual_clock_now(clock) == UINT64_MAX);
    V(mqlite_manual_clock_now(NULL) == 0);
    mqlite_manual_clock_free(clock);
    mqlite_manual_clock_free(NULL);
    T(NUL_, mqlite_store_options_set_limits(NULL, 1, 1, ERR));
    T(NUL_, mqlite_store_options_set_producer_window(NULL, 1, 1, true, ERR));
    T(NUL_, mqlite_store_options_set_open_flags(NULL, true, false, ERR));
    T(NUL_, mqlite_store_options_set_read_only(NULL, true, ERR));

    T(NUL_, mqlite_redelivery_policy_set(NULL, 6, 0, 0, ERR));
    T(INV, mqlite_redelivery_policy_set(p, -2, 0, 0, ERR));
    T(NUL_, mqlite_redelivery_policy_set_backoff(NULL, true, 5.0, 0, false, ERR));
    T(INV, mqlite_redelivery_policy_set_backoff(p, true, NAN, 0, false, ERR));
    T(INV, mqlite_redelivery_policy_set_backoff(p, true, 0.5, 0, false, ERR));
    uint64_t delays[2] = {1, 2};
    T(NUL_, mqlite_redelivery_policy_set_delays(NULL, delays, 2, ERR));
    T(NUL_, mqlite_redelivery_policy_set_delays(p, NULL, 2, ERR));
    T(INV, mqlite_redelivery_policy_set_delays(p, delays, SIZE_MAX, ERR));
    T(MQLITE_OK, mqlite_redelivery_policy_set_delays(p, NULL, 0, ERR));

    T(NUL_, mqlite_queue_options_set_durability(NULL, 0, 0, ERR));
    T(INV, mqlite_queue_options_set_durability(qo, 7, 0, ERR));
    T(NUL_, mqlite_queue_options_set_limits(NULL, 0, 0, MQLITE_OVERFLOW_REJECT, 0, ERR));
    T(INV, mqlite_queue_options_set_limits(qo, 0, 0, 9, 0, ERR));
    T(NUL_, mqlite_queue_options_set_redelivery(NULL, p, ERR));
    T(NUL_, mqlite_queue_options_set_redelivery(qo, NULL, ERR));
    T(NUL_, mqlite_queue_options_set_dead_letter(NULL, 0, S("D"), ERR));
    T(NUL_, mqlite_queue_options_set_dead_letter(qo, 0, NULL, 1, ERR));
    T(UTF, mqlite_queue_options_set_dead_letter(qo, 0, S(BAD), ERR));
    T(INV, mqlite_queue_options_set_dead_letter(qo, 0, "D", SIZE_MAX, ERR));
    T(NUL_, mqlite_queue_options_set_delivery(NULL, 0, true, MQLITE_GROUP_FAILURE_BLOCK, ERR));
    T(INV, mqlite_queue_options_set_delivery(qo, 0, true, 9, ERR));
    T(NUL_, mqlite_queue_options_set_dedup_window(NULL, 0, 0, ERR));
    T(NUL_, mqlite_queue_options_set_retention(NULL, 1000, ERR));
    T(MQLITE_OK, mqlite_queue_options_set_retention(qo, 1000, ERR));
    T(NUL_, mqlite_queue_options_set_consuming(NULL, 10, MQLITE_ACK_DURABILITY_LAZY, ERR));
    T(INV, mqlite_queue_options_set_consuming(qo, 10, 7, ERR));
    T(INV, mqlite_queue_options_set_consuming(qo, UINT32_MAX, MQLITE_ACK_DURABILITY_SYNC, ERR));
    T(MQLITE_OK, mqlite_queue_options_set_consuming(qo, 0, MQLITE_ACK_DURABILITY_LAZY, ERR));

    mqlite_replay_filter *f = mqlite_replay_filter_new();
    uint64_t some_ids[1] = {1};
    V(f != NULL);
    mqlite_replay_filter_free(NULL);
    T(NUL_, mqlite_replay_filter_set_reason(NULL, MQLITE_DEAD_LETTER_REJECTED, ERR));
    T(INV, mqlite_replay_filter_set_reason(f, 99, ERR));
    T(NUL_, mqlite_replay_filter_set_original_queue(NULL, S("q"), ERR));
    T(NUL_, mqlite_replay_filter_set_original_queue(f, NULL, 1, ERR));
    T(UTF, mqlite_replay_filter_set_original_queue(f, S(BAD), ERR));
    T(INV, mqlite_replay_filter_set_original_queue(f, "q", SIZE_MAX, ERR));
    T(NUL_, mqlite_replay_filter_set_time_range(NULL, 0, 0, ERR));
    T(NUL_, mqlite_replay_filter_set_ids(NULL, some_ids, 1, ERR));
    T(NUL_, mqlite_replay_filter_set_ids(f, NULL, 1, ERR));
    T(INV, mqlite_replay_filter_set_ids(f, some_ids, SIZE_MAX, ERR));
    T(NUL_, mqlite_replay_filter_set_target(NULL, S("q"), ERR));
    T(NUL_, mqlite_replay_filter_set_target(f, NULL, 1, ERR));
    T(UTF, mqlite_replay_filter_set_target(f, S(BAD), ERR));
    T(INV, mqlite_replay_filter_set_target(f, "q", SIZE_MAX, ERR));
    T(NUL_, mqlite_replay_filter_set_limit(NULL, 0, false, ERR));
    mqlite_replay_filter_free(f);

    mqlite_store_options_free(so);
    mqlite_queue_options_free(qo);
    mqlite_redelivery_policy_free(p);
}

static void messages(void) {
    mqlite_message *m = NULL, *sentinel = (mqlite_message *)&m;
    mqlite_message *out = sentinel;
    T(NUL_, mqlite_message_new(NULL, 4, &out, ERR));
    T(NUL_, mqlite_message_new(B, 4, NULL, ERR));
    T(INV, mqlite_message_new(B, SIZE_MAX, &out, ERR));
    V(out == sentinel); /* outputs are written only on success */
    T(MQLITE_OK, mqlite_message_new(NULL, 0, &m, ERR));
    mqlite_message_free(NULL);

    T(NUL_, mqlite_message_set_property_string(NULL, S(K), S("v"), ERR));
    T(NUL_, mqlite_message_set_property_string(m, NULL, 3, S("v"), ERR));
    T(NUL_, mqlite_message_set_property_string(m, S(K), NULL, 1, ERR));
    T(UTF, mqlite_message_set_property_string(m, S(BAD), S("v"), ERR));
    T(UTF, mqlite_message_set_property_string(m, S(K), S(BAD), ERR));
    T(INV, mqlite_message_set_property_string(m, K, SIZE_MAX, S("v"), ERR));
    T(INV, mqlite_message_set_property_string(m, S(K), "v", SIZE_MAX, ERR));
    T(NUL_, mqlite_message_set_property_int(NULL, S(K), 1, ERR));
    T(NUL_, mqlite_message_set_property_int(m, NULL, 3, 1, ERR));
    T(UTF, mqlite_message_set_property_int(m, S(BAD), 1, ERR));
    T(INV, mqlite_message_set_property_int(m, K, SIZE_MAX, 1, ERR));
    T(NUL_, mqlite_message_set_property_float(NULL, S(K), 1.0, ERR));
    T(NUL_, mqlite_message_set_property_float(m, NULL, 3, 1.0, ERR));
    T(UTF, mqlite_message_set_property_float(m, S(BAD), 1.0, ERR));
    T(INV, mqlite_message_set_property_float(m, K, SIZE_MAX, 1.0, ERR));
    T(NUL_, mqlite_message_set_property_bool(NULL, S(K), true, ERR));
    T(NUL_, mqlite_message_set_property_bool(m, NULL, 3, true, ERR));
    T(UTF, mqlite_message_set_property_bool(m, S(BAD), true, ERR));
    T(INV, mqlite_message_set_property_bool(m, K, SIZE_MAX, true, ERR));
    T(NUL_, mqlite_message_set_property_bytes(NULL, S(K), B, 4, ERR));
    T(NUL_, mqlite_message_set_property_bytes(m, NULL, 3, B, 4, ERR));
    T(NUL_, mqlite_message_set_property_bytes(m, S(K), NULL, 4, ERR));
    T(UTF, mqlite_message_set_property_bytes(m, S(BAD), B, 4, ERR));
    T(INV, mqlite_message_set_property_bytes(m, K, SIZE_MAX, B, 4, ERR));
    T(INV, mqlite_message_set_property_bytes(m, S(K), B, SIZE_MAX, ERR));
    V(mqlite_message_property_count(m) == 0); /* nothing was set by the failures */
    T(NUL_, mqlite_message_set_priority(NULL, 1, ERR));
    T(INV, mqlite_message_set_priority(m, 10, ERR));
    T(NUL_, mqlite_message_set_ttl_ms(NULL, 1, ERR));
    T(NUL_, mqlite_message_set_delay_ms(NULL, 1, ERR));
    T(NUL_, mqlite_message_set_deliver_at_ms(NULL, 1, ERR));
    T(NUL_, mqlite_message_set_repeat(NULL, 10, 2, ERR));
    T(NUL_, mqlite_message_set_group(NULL, S("g"), ERR));
    T(NUL_, mqlite_message_set_group(m, NULL, 1, ERR));
    T(UTF, mqlite_message_set_group(m, S(BAD), ERR));
    T(INV, mqlite_message_set_group(m, "g", SIZE_MAX, ERR));
    T(NUL_, mqlite_message_set_dedup_key(NULL, S("d"), ERR));
    T(NUL_, mqlite_message_set_dedup_key(m, NULL, 1, ERR));
    T(UTF, mqlite_message_set_dedup_key(m, S(BAD), ERR));
    T(INV, mqlite_message_set_dedup_key(m, "d", SIZE_MAX, ERR));
    T(NUL_, mqlite_message_set_correlation_id(NULL, S("c"), ERR));
    T(NUL_, mqlite_message_set_correlation_id(m, NULL, 1, ERR));
    T(UTF, mqlite_message_set_correlation_id(m, S(BAD), ERR));
    T(INV, mqlite_message_set_correlation_id(m, "c", SIZE_MAX, ERR));

    const uint8_t *data;
    const char *str;
    size_t len;
    mqlite_value v;
    mqlite_dead_letter_info info;
    T(NUL_, mqlite_message_body(NULL, &data, &len));
    T(NUL_, mqlite_message_body(m, NULL, &len));
    T(NUL_, mqlite_message_body(m, &data, NULL));
    T(MQLITE_OK, mqlite_message_body(m, &data, &len));
    V(len == 0);
    V(mqlite_message_id(NULL) == 0);
    V(mqlite_message_priority(NULL) == 0);
    V(mqlite_message_timestamp_ms(NULL) == 0);
    V(mqlite_message_expires_at_ms(NULL) == 0);
    V(mqlite_message_property_count(NULL) == 0);
    T(NUL_, mqlite_message_correlation_id(NULL, &str, &len));
    T(NUL_, mqlite_message_correlation_id(m, NULL, &len));
    T(NUL_, mqlite_message_correlation_id(m, &str, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_correlation_id(m, &str, &len));
    T(NUL_, mqlite_message_group(NULL, &str, &len));
    T(NUL_, mqlite_message_group(m, NULL, &len));
    T(NUL_, mqlite_message_group(m, &str, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_group(m, &str, &len));
    T(NUL_, mqlite_message_dedup_key(NULL, &str, &len));
    T(NUL_, mqlite_message_dedup_key(m, NULL, &len));
    T(NUL_, mqlite_message_dedup_key(m, &str, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_dedup_key(m, &str, &len));
    T(NUL_, mqlite_message_property_at(NULL, 0, &str, &len, &v));
    T(NUL_, mqlite_message_property_at(m, 0, NULL, &len, &v));
    T(NUL_, mqlite_message_property_at(m, 0, &str, NULL, &v));
    T(NUL_, mqlite_message_property_at(m, 0, &str, &len, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_property_at(m, SIZE_MAX, &str, &len, &v));
    T(NUL_, mqlite_message_property(NULL, S(K), &v));
    T(NUL_, mqlite_message_property(m, NULL, 3, &v));
    T(UTF, mqlite_message_property(m, S(BAD), &v));
    T(INV, mqlite_message_property(m, K, SIZE_MAX, &v));
    T(NUL_, mqlite_message_property(m, S(K), NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_property(m, S(K), &v));
    uint64_t period;
    uint32_t repeats;
    T(NUL_, mqlite_message_repeat(NULL, &period, &repeats));
    T(NUL_, mqlite_message_repeat(m, NULL, &repeats));
    T(NUL_, mqlite_message_repeat(m, &period, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_repeat(m, &period, &repeats));
    T(NUL_, mqlite_message_dead_letter_info(NULL, &info));
    T(NUL_, mqlite_message_dead_letter_info(m, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_dead_letter_info(m, &info));
    mqlite_message_free(m);
}

static void store_and_queue(const char *dir) {
    mqlite_store *s = NULL, *sent = (mqlite_store *)&s, *so = sent;
    T(NUL_, mqlite_store_open(NULL, 4, NULL, &so, ERR));
    T(NUL_, mqlite_store_open(dir, strlen(dir), NULL, NULL, ERR));
    T(INV, mqlite_store_open(dir, SIZE_MAX, NULL, &so, ERR));
    T(INV, mqlite_store_open("", 0, NULL, &so, ERR));
    T(INV, mqlite_store_open("a\0b", 3, NULL, &so, ERR));
    V(so == sent);
    T(MQLITE_OK, mqlite_store_open(dir, strlen(dir), NULL, &s, ERR));
    {
        /* Another opener becomes a client unless it refuses to. */
        mqlite_store_options *oo = mqlite_store_options_new();
        T(MQLITE_OK, mqlite_store_options_set_open_as(oo, MQLITE_OPEN_AS_OWNER, 0, ERR));
        T(MQLITE_LOCKED, mqlite_store_open(dir, strlen(dir), oo, &so, ERR));
        T(INV, mqlite_store_options_set_open_as(oo, UINT32_MAX, UINT64_MAX, ERR));
        T(NUL_, mqlite_store_options_set_open_as(NULL, 0, 0, ERR));
        mqlite_store_options_free(oo);
        uint32_t r;
        T(NUL_, mqlite_store_role(NULL, &r, NULL, ERR));
        T(NUL_, mqlite_store_role(s, NULL, NULL, ERR));
        T(MQLITE_OK, mqlite_store_role(s, &r, NULL, ERR));
        V(r == MQLITE_ROLE_OWNER);
    }
    mqlite_store_free(NULL);
    T(NUL_, mqlite_store_close(NULL, ERR));
    T(NUL_, mqlite_store_flush(NULL, ERR));
    uint64_t u;
    T(NUL_, mqlite_store_disk_bytes(NULL, &u, ERR));
    T(NUL_, mqlite_store_disk_bytes(s, NULL, ERR));
    const char *pth;
    size_t plen;
    T(NUL_, mqlite_store_path(NULL, &pth, &plen));
    T(NUL_, mqlite_store_path(s, NULL, &plen));
    T(NUL_, mqlite_store_path(s, &pth, NULL));
    mqlite_name_list *names = NULL, *nout = NULL;
    T(NUL_, mqlite_store_queue_names(NULL, &nout, ERR));
    T(NUL_, mqlite_store_queue_names(s, NULL, ERR));
    T(MQLITE_OK, mqlite_store_queue_names(s, &names, ERR));
    V(mqlite_name_list_count(NULL) == 0);
    T(NUL_, mqlite_name_list_get(NULL, 0, &pth, &plen));
    T(NUL_, mqlite_name_list_get(names, 0, NULL, &plen));
    T(NUL_, mqlite_name_list_get(names, 0, &pth, NULL));
    T(MQLITE_NOT_FOUND, mqlite_name_list_get(names, SIZE_MAX, &pth, &plen));
    mqlite_name_list_free(names);
    mqlite_name_list_free(NULL);
    mqlite_recovery_report rep;
    /* The layout the library writes (missing and lost_queues, then the checkpoint fields, were
     * added at the end). */
    CHECK(offsetof(mqlite_recovery_report, missing) == 5 * sizeof(uint64_t));
    CHECK(offsetof(mqlite_recovery_report, lost_queues) == 6 * sizeof(uint64_t));
    CHECK(offsetof(mqlite_recovery_report, checkpoint_used) == 7 * sizeof(uint64_t));
    CHECK(offsetof(mqlite_recovery_report, checkpoint_ignored_len) ==
          offsetof(mqlite_recovery_report, checkpoint_ignored) + sizeof(const char *));
    CHECK(sizeof rep == offsetof(mqlite_recovery_report, checkpoint_ignored_len) + sizeof(size_t));
    T(NUL_, mqlite_store_recovery_report(NULL, &rep, ERR));
    T(NUL_, mqlite_store_recovery_report(s, NULL, ERR));

    mqlite_queue *q = NULL, *q2 = NULL, *qout = NULL;
    mqlite_queue_options *qo = mqlite_queue_options_new();
    char long_name[300];
    memset(long_name, 'n', sizeof long_name);
    T(NUL_, mqlite_store_queue(NULL, S("q"), &qout, ERR));
    T(NUL_, mqlite_store_queue(s, NULL, 1, &qout, ERR));
    T(NUL_, mqlite_store_queue(s, S("q"), NULL, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_queue(s, S(BAD), &qout, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_queue(s, "", 0, &qout, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_queue(s, S("a\x01"), &qout, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_queue(s, long_name, 256, &qout, ERR));
    T(INV, mqlite_store_queue(s, "q", SIZE_MAX, &qout, ERR));
    T(NUL_, mqlite_store_queue_with(NULL, S("q"), qo, &qout, ERR));
    T(NUL_, mqlite_store_queue_with(s, NULL, 1, qo, &qout, ERR));
    T(NUL_, mqlite_store_queue_with(s, S("q"), NULL, &qout, ERR));
    T(NUL_, mqlite_store_queue_with(s, S("q"), qo, NULL, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_queue_with(s, S(BAD), qo, &qout, ERR));
    T(INV, mqlite_store_queue_with(s, "q", SIZE_MAX, qo, &qout, ERR));
    T(MQLITE_OK, mqlite_store_queue(s, S("q"), &q, ERR));
    T(MQLITE_OK, mqlite_store_queue_with(s, S("q2"), qo, &q2, ERR));

    mqlite_message *m = NULL;
    T(MQLITE_OK, mqlite_message_new(B, 4, &m, ERR));
    const mqlite_message *batch_bad[2] = {m, NULL};
    const mqlite_message *batch[2] = {m, m};
    uint64_t ids[2];
    const char *str;
    size_t len, n;
    mqlite_queue_free(NULL);
    V(!mqlite_queue_is_memory(NULL));
    T(NUL_, mqlite_queue_name(NULL, &str, &len));
    T(NUL_, mqlite_queue_name(q, NULL, &len));
    T(NUL_, mqlite_queue_name(q, &str, NULL));
    T(NUL_, mqlite_queue_send(NULL, m, &u, ERR));
    T(NUL_, mqlite_queue_send(q, NULL, &u, ERR));
    T(NUL_, mqlite_queue_send_bytes(NULL, B, 4, &u, ERR));
    T(NUL_, mqlite_queue_send_bytes(q, NULL, 4, &u, ERR));
    T(INV, mqlite_queue_send_bytes(q, B, SIZE_MAX, &u, ERR));
    T(NUL_, mqlite_queue_send_async(NULL, m, cb, NULL, NULL, ERR));
    T(NUL_, mqlite_queue_send_async(q, NULL, cb, NULL, NULL, ERR));
    T(NUL_, mqlite_queue_send_batch(NULL, batch, 2, ids, ERR));
    T(NUL_, mqlite_queue_send_batch(q, NULL, 2, ids, ERR));
    T(NUL_, mqlite_queue_send_batch(q, batch_bad, 2, ids, ERR));
    T(INV, mqlite_queue_send_batch(q, batch, SIZE_MAX, ids, ERR));
    T(MQLITE_OK, mqlite_queue_send_batch(q, NULL, 0, NULL, ERR));
    T(MQLITE_OK, mqlite_queue_send_batch(q, batch, 2, ids, ERR));

    mqlite_delivery *d = NULL, *dsent = (mqlite_delivery *)&d, *dout = dsent, *ds[4];
    T(NUL_, mqlite_queue_receive(NULL, 0, &dout, ERR));
    T(NUL_, mqlite_queue_receive(q, 0, NULL, ERR));
    T(MQLITE_TIMEOUT, mqlite_queue_receive(q2, 0, &dout, ERR));
    V(dout == dsent);
    T(NUL_, mqlite_queue_receive_batch(NULL, 4, 0, ds, &n, ERR));
    T(NUL_, mqlite_queue_receive_batch(q, 4, 0, NULL, &n, ERR));
    T(NUL_, mqlite_queue_receive_batch(q, 4, 0, ds, NULL, ERR));
    T(INV, mqlite_queue_receive_batch(q, 0, 0, ds, &n, ERR));
    T(INV, mqlite_queue_receive_batch(q, SIZE_MAX, 0, ds, &n, ERR));
    mqlite_message *ms[4];
    T(NUL_, mqlite_queue_browse(NULL, 4, ms, &n, ERR));
    T(NUL_, mqlite_queue_browse(q, 4, NULL, &n, ERR));
    T(NUL_, mqlite_queue_browse(q, 4, ms, NULL, ERR));
    T(NUL_, mqlite_queue_browse_ready(NULL, 4, ms, &n, ERR));
    T(NUL_, mqlite_queue_browse_ready(q, 4, NULL, &n, ERR));
    T(NUL_, mqlite_queue_browse_ready(q, 4, ms, NULL, ERR));
    T(INV, mqlite_queue_browse_ready(q, SIZE_MAX, ms, &n, ERR));
    V(mqlite_message_state(NULL) == MQLITE_STATE_NONE);
    V(mqlite_message_delivery_count(NULL) == 0);
    T(INV, mqlite_queue_browse(q, SIZE_MAX, ms, &n, ERR));
    T(NUL_, mqlite_queue_purge(NULL, &u, ERR));
    mqlite_purge_report pr;
    T(NUL_, mqlite_queue_purge_filtered(NULL, 0, true, &pr, ERR));
    mqlite_stats st;
    T(NUL_, mqlite_queue_stats(NULL, &st, ERR));
    T(NUL_, mqlite_queue_stats(q, NULL, ERR));
    mqlite_consumer *c = NULL, *cout = NULL;
    T(NUL_, mqlite_queue_consumer(NULL, MQLITE_ACK_EXPLICIT, &cout, ERR));
    T(NUL_, mqlite_queue_consumer(q, MQLITE_ACK_EXPLICIT, NULL, ERR));
    T(INV, mqlite_queue_consumer(q, 77, &cout, ERR));
    T(MQLITE_OK, mqlite_queue_consumer(q, MQLITE_ACK_EXPLICIT, &c, ERR));
    T(NUL_, mqlite_queue_consumer_prefetch(NULL, MQLITE_ACK_EXPLICIT, 5, &cout, ERR));
    T(NUL_, mqlite_queue_consumer_prefetch(q, MQLITE_ACK_EXPLICIT, 5, NULL, ERR));
    T(INV, mqlite_queue_consumer_prefetch(q, 77, 5, &cout, ERR));
    T(INV, mqlite_queue_consumer_prefetch(q, MQLITE_ACK_EXPLICIT, UINT32_MAX, &cout, ERR));
    mqlite_listener *l = NULL;
    T(NUL_, mqlite_queue_listen(NULL, handler, NULL, NULL, &l, ERR));
    T(NUL_, mqlite_queue_listen(q, NULL, NULL, NULL, &l, ERR));
    T(NUL_, mqlite_queue_listen(q, handler, NULL, NULL, NULL, ERR));
    mqlite_listener_free(NULL);

    /* consumers and deliveries */
    T(NUL_, mqlite_consumer_receive(NULL, 0, &dout, ERR));
    T(NUL_, mqlite_consumer_receive(c, 0, NULL, ERR));
    T(NUL_, mqlite_consumer_receive_batch(NULL, 4, 0, ds, &n, ERR));
    T(NUL_, mqlite_consumer_receive_batch(c, 4, 0, NULL, &n, ERR));
    T(NUL_, mqlite_consumer_receive_batch(c, 4, 0, ds, NULL, ERR));
    T(INV, mqlite_consumer_receive_batch(c, SIZE_MAX, 0, ds, &n, ERR));
    T(INV, mqlite_consumer_receive_batch(c, 0, 0, ds, &n, ERR));
    /* delivery batches (the batch owns its deliveries: see test_batch.c) */
    mqlite_delivery_batch *db = mqlite_delivery_batch_new();
    V(db != NULL);
    T(NUL_, mqlite_queue_receive_into(NULL, 4, 0, db, &n, ERR));
    T(NUL_, mqlite_queue_receive_into(q, 4, 0, NULL, &n, ERR));
    T(NUL_, mqlite_queue_receive_into(q, 4, 0, db, NULL, ERR));
    T(INV, mqlite_queue_receive_into(q, 0, 0, db, &n, ERR));
    T(MQLITE_TIMEOUT, mqlite_queue_receive_into(q2, SIZE_MAX, 0, db, &n, ERR));
    T(NUL_, mqlite_consumer_receive_into(NULL, 4, 0, db, &n, ERR));
    T(NUL_, mqlite_consumer_receive_into(c, 4, 0, NULL, &n, ERR));
    T(NUL_, mqlite_consumer_receive_into(c, 4, 0, db, NULL, ERR));
    T(INV, mqlite_consumer_receive_into(c, 0, 0, db, &n, ERR));
    T(NUL_, mqlite_delivery_batch_ack(NULL, ERR));
    T(NUL_, mqlite_delivery_batch_ack_sync(NULL, ERR));
    T(MQLITE_OK, mqlite_delivery_batch_ack(db, ERR));
    T(MQLITE_OK, mqlite_delivery_batch_ack_sync(db, ERR));
    V(mqlite_delivery_batch_count(NULL) == 0 && mqlite_delivery_batch_count(db) == 0);
    V(mqlite_delivery_batch_get(NULL, 0) == NULL && mqlite_delivery_batch_get(db, SIZE_MAX) == NULL);
    mqlite_delivery_batch_clear(NULL);
    mqlite_delivery_batch_clear(db);
    mqlite_delivery_batch_free(NULL);
    mqlite_delivery_batch_free(db);
    T(MQLITE_OK, mqlite_consumer_receive(c, 0, &d, ERR));
    mqlite_consumer_free(NULL);
    V(mqlite_delivery_message(NULL) == NULL);
    V(mqlite_delivery_id(NULL) == 0);
    V(mqlite_delivery_count(NULL) == 0);
    V(!mqlite_delivery_redelivered(NULL));
    V(!mqlite_delivery_settled(NULL));
    T(NUL_, mqlite_delivery_ack(NULL, ERR));
    T(NUL_, mqlite_delivery_ack_sync(NULL, ERR));
    T(NUL_, mqlite_delivery_nack(NULL, S("r"), ERR));
    T(NUL_, mqlite_delivery_nack(d, NULL, 1, ERR));
    T(UTF, mqlite_delivery_nack(d, S(BAD), ERR));
    T(INV, mqlite_delivery_nack(d, "r", SIZE_MAX, ERR));
    T(NUL_, mqlite_delivery_nack_with_delay(NULL, S("r"), 1, ERR));
    T(NUL_, mqlite_delivery_nack_with_delay(d, NULL, 1, 1, ERR));
    T(UTF, mqlite_delivery_nack_with_delay(d, S(BAD), 1, ERR));
    T(INV, mqlite_delivery_nack_with_delay(d, "r", SIZE_MAX, 1, ERR));
    T(NUL_, mqlite_delivery_reject(NULL, S("r"), ERR));
    T(NUL_, mqlite_delivery_reject(d, NULL, 1, ERR));
    T(UTF, mqlite_delivery_reject(d, S(BAD), ERR));
    T(INV, mqlite_delivery_reject(d, "r", SIZE_MAX, ERR));
    T(NUL_, mqlite_delivery_release(NULL, ERR));
    V(!mqlite_delivery_settled(d)); /* argument errors settle nothing */
    mqlite_delivery_free(NULL);

    /* ack_batch: NULLs, SIZE_MAX, a delivery of another queue, a settled one */
    mqlite_delivery *two[2] = {d, NULL};
    T(NUL_, mqlite_queue_ack_batch(NULL, two, 1, ERR));
    T(NUL_, mqlite_queue_ack_batch(q, NULL, 1, ERR));
    T(NUL_, mqlite_queue_ack_batch(q, two, 2, ERR));
    T(INV, mqlite_queue_ack_batch(q, two, SIZE_MAX, ERR));
    T(INV, mqlite_queue_ack_batch(q2, two, 1, ERR));
    V(!mqlite_delivery_settled(d));
    T(MQLITE_OK, mqlite_delivery_ack(d, ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_queue_ack_batch(q, two, 1, ERR));
    T(NUL_, mqlite_queue_ack_batch_sync(NULL, two, 1, ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_queue_ack_batch_sync(q, two, 1, ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack_sync(d, ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_delivery_release(d, ERR));
    /* transactions and replay */
    mqlite_transaction *t = NULL, *tout = NULL;
    T(NUL_, mqlite_store_transaction(NULL, &tout, ERR));
    T(NUL_, mqlite_store_transaction(s, NULL, ERR));
    T(MQLITE_OK, mqlite_store_transaction(s, &t, ERR));
    T(NUL_, mqlite_transaction_send(NULL, q, m, ERR));
    T(NUL_, mqlite_transaction_send(t, NULL, m, ERR));
    T(NUL_, mqlite_transaction_send(t, q, NULL, ERR));
    T(NUL_, mqlite_transaction_ack(NULL, d, ERR));
    T(NUL_, mqlite_transaction_ack(t, NULL, ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_transaction_ack(t, d, ERR)); /* d was acked above */
    mqlite_delivery_free(d);
    V(mqlite_transaction_len(NULL) == 0);
    T(NUL_, mqlite_transaction_commit(NULL, ids, ERR));
    T(NUL_, mqlite_transaction_rollback(NULL, ERR));
    T(MQLITE_OK, mqlite_transaction_rollback(t, ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_transaction_commit(t, ids, ERR));
    mqlite_transaction_free(NULL);
    T(NUL_, mqlite_queue_replay(NULL, NULL, &u, ERR));
    T(MQLITE_OK, mqlite_queue_replay(q, NULL, &u, ERR));
    V(u == 0);
    T(MQLITE_OK, mqlite_consumer_receive(c, 0, &d, ERR)); /* an unsettled one for after close */
    mqlite_transaction *t2 = NULL;
    T(MQLITE_OK, mqlite_store_transaction(s, &t2, ERR));
    T(MQLITE_OK, mqlite_transaction_send(t2, q, m, ERR));

    /* ---- after close: every call through the store's handles says CLOSED */
    T(MQLITE_OK, mqlite_store_close(s, ERR));
    T(MQLITE_OK, mqlite_store_close(s, ERR));
    T(MQLITE_CLOSED, mqlite_store_flush(s, ERR));
    T(MQLITE_CLOSED, mqlite_store_disk_bytes(s, &u, ERR));
    T(MQLITE_OK, mqlite_store_recovery_report(s, &rep, ERR)); /* a record of the open */
    T(MQLITE_CLOSED, mqlite_store_queue(s, S("q"), &qout, ERR));
    T(MQLITE_CLOSED, mqlite_store_queue_with(s, S("q"), qo, &qout, ERR));
    T(MQLITE_OK, mqlite_queue_name(q, &str, &len)); /* local to the handle */
    T(MQLITE_CLOSED, mqlite_queue_send(q, m, &u, ERR));
    T(MQLITE_CLOSED, mqlite_queue_send_bytes(q, B, 4, &u, ERR));
    T(MQLITE_CLOSED, mqlite_queue_send_async(q, m, cb, NULL, NULL, ERR));
    T(MQLITE_CLOSED, mqlite_queue_send_batch(q, batch, 2, ids, ERR));
    T(MQLITE_CLOSED, mqlite_queue_receive(q, 0, &dout, ERR));
    T(MQLITE_CLOSED, mqlite_queue_receive(q, -1, &dout, ERR)); /* even "wait forever" */
    T(MQLITE_CLOSED, mqlite_queue_receive_batch(q, 4, 0, ds, &n, ERR));
    T(MQLITE_CLOSED, mqlite_queue_browse(q, 4, ms, &n, ERR));
    T(MQLITE_CLOSED, mqlite_queue_purge(q, &u, ERR));
    T(MQLITE_CLOSED, mqlite_queue_purge_filtered(q, 0, true, &pr, ERR));
    T(MQLITE_CLOSED, mqlite_queue_stats(q, &st, ERR));
    T(MQLITE_CLOSED, mqlite_queue_consumer(q, MQLITE_ACK_EXPLICIT, &cout, ERR));
    T(MQLITE_CLOSED, mqlite_queue_listen(q, handler, NULL, NULL, &l, ERR));
    T(MQLITE_CLOSED, mqlite_consumer_receive(c, 0, &dout, ERR));
    T(MQLITE_CLOSED, mqlite_store_transaction(s, &tout, ERR));
    T(MQLITE_CLOSED, mqlite_store_queue_names(s, &nout, ERR));
    T(MQLITE_OK, mqlite_store_path(s, &pth, &plen)); /* local to the handle */
    T(MQLITE_CLOSED, mqlite_transaction_commit(t2, ids, ERR));
    T(MQLITE_CLOSED, mqlite_queue_replay(q, NULL, &u, ERR));
    mqlite_transaction_free(t2);
    mqlite_transaction_free(t);
    T(MQLITE_CLOSED, mqlite_consumer_receive_batch(c, 4, 0, ds, &n, ERR));
    V(dout == dsent);
    T(MQLITE_CLOSED, mqlite_delivery_nack(d, S("r"), ERR));
    T(MQLITE_ALREADY_SETTLED, mqlite_delivery_ack(d, ERR)); /* the failed nack settled it */
    mqlite_delivery_free(d);
    T(MQLITE_OK, mqlite_consumer_receive(c, 0, &d, ERR) == MQLITE_CLOSED ? MQLITE_OK : MQLITE_INTERNAL);
    mqlite_consumer_free(c);
    mqlite_message_free(m);
    mqlite_queue_options_free(qo);
    mqlite_store_free(s);
    /* queue handles outlive the store handle */
    T(MQLITE_CLOSED, mqlite_queue_send_bytes(q2, B, 4, &u, ERR));
    mqlite_queue_free(q2);
    mqlite_queue_free(q);
}

/* Settling after close: each of ack, reject, release, nack_with_delay gets CLOSED. */
static void settle_after_close(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "settle");
    mqlite_delivery *ds[4];
    size_t n = 0;
    for (int i = 0; i < 4; i++) T(MQLITE_OK, mqlite_queue_send_bytes(q, B, 4, NULL, ERR));
    T(MQLITE_OK, mqlite_queue_receive_batch(q, 4, 0, ds, &n, ERR));
    V(n == 4);
    T(MQLITE_OK, mqlite_store_close(s, ERR));
    T(MQLITE_CLOSED, mqlite_delivery_ack(ds[0], ERR));
    T(MQLITE_CLOSED, mqlite_delivery_reject(ds[1], S("r"), ERR));
    T(MQLITE_CLOSED, mqlite_delivery_release(ds[2], ERR));
    T(MQLITE_CLOSED, mqlite_delivery_nack_with_delay(ds[3], S("r"), 5, ERR));
    for (int i = 0; i < 4; i++) mqlite_delivery_free(ds[i]);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

/* Topics and subscriptions: NULLs, bad UTF-8, huge lengths, bad flags, and after close. */
static void topics(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_topic *t = NULL, *tsent = (mqlite_topic *)&t, *tout = tsent;
    mqlite_queue *q = NULL, *qsent = (mqlite_queue *)&q, *qout = qsent;
    T(NUL_, mqlite_store_topic(NULL, S("t"), &tout, ERR));
    T(NUL_, mqlite_store_topic(s, NULL, 1, &tout, ERR));
    T(NUL_, mqlite_store_topic(s, S("t"), NULL, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_topic(s, S(BAD), &tout, ERR));
    T(INV, mqlite_store_topic(s, "t", SIZE_MAX, &tout, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_topic(s, S("a..b"), &tout, ERR));
    V(tout == tsent);
    T(MQLITE_OK, mqlite_store_topic(s, S("t.x"), &t, ERR));
    T(NUL_, mqlite_store_subscribe(NULL, S("t.>"), S("n"), 1, NULL, 0, NULL, &qout, ERR));
    T(NUL_, mqlite_store_subscribe(s, NULL, 3, S("n"), 1, NULL, 0, NULL, &qout, ERR));
    T(NUL_, mqlite_store_subscribe(s, S("t.>"), S("n"), 1, NULL, 0, NULL, NULL, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_subscribe(s, S(BAD), S("n"), 1, NULL, 0, NULL, &qout, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_subscribe(s, S("t.>"), S(BAD), 1, NULL, 0, NULL, &qout, ERR));
    T(UTF, mqlite_store_subscribe(s, S("t.>"), S("n"), 1, S(BAD), NULL, &qout, ERR));
    T(INV, mqlite_store_subscribe(s, S("t.>"), S("n"), 1, "x", SIZE_MAX, NULL, &qout, ERR));
    T(INV, mqlite_store_subscribe(s, S("t.>"), S("n"), 4, NULL, 0, NULL, &qout, ERR));
    T(INV, mqlite_store_subscribe(s, S("t.>"), NULL, 0, MQLITE_SUBSCRIBE_DURABLE, NULL, 0, NULL, &qout, ERR));
    V(qout == qsent);
    mqlite_queue_options *qo = mqlite_queue_options_new();
    T(MQLITE_OK, mqlite_store_subscribe(s, S("t.>"), S("n"), 1, S("k > 1"), qo, &q, ERR));
    mqlite_queue_options_free(qo);
    mqlite_message *m = NULL;
    T(MQLITE_OK, mqlite_message_new(B, 4, &m, ERR));
    const char *str;
    size_t len;
    T(NUL_, mqlite_message_topic(NULL, &str, &len));
    T(NUL_, mqlite_message_topic(m, NULL, &len));
    T(NUL_, mqlite_message_topic(m, &str, NULL));
    T(MQLITE_NOT_FOUND, mqlite_message_topic(m, &str, &len));
    uint64_t u, ids[2];
    const mqlite_message *batch[2] = {m, m}, *batch_bad[2] = {m, NULL};
    T(NUL_, mqlite_topic_publish(NULL, m, &u, ERR));
    T(NUL_, mqlite_topic_publish(t, NULL, &u, ERR));
    T(MQLITE_OK, mqlite_topic_publish(t, m, NULL, ERR));
    T(NUL_, mqlite_topic_publish_async(NULL, m, cb, NULL, NULL, ERR));
    T(NUL_, mqlite_topic_publish_async(t, NULL, cb, NULL, NULL, ERR));
    T(NUL_, mqlite_topic_publish_batch(NULL, batch, 2, ids, ERR));
    T(NUL_, mqlite_topic_publish_batch(t, NULL, 2, ids, ERR));
    T(NUL_, mqlite_topic_publish_batch(t, batch_bad, 2, ids, ERR));
    T(INV, mqlite_topic_publish_batch(t, batch, SIZE_MAX, ids, ERR));
    T(MQLITE_OK, mqlite_topic_publish_batch(t, NULL, 0, NULL, ERR));
    mqlite_topic_stats st;
    T(NUL_, mqlite_topic_stats_get(NULL, &st, ERR));
    T(NUL_, mqlite_topic_stats_get(t, NULL, ERR));
    T(MQLITE_OK, mqlite_topic_stats_get(t, &st, ERR));
    V(st.unrouted == 1 && st.subscriptions == 1); /* no property k: the selector is UNKNOWN */
    T(NUL_, mqlite_store_unsubscribe(NULL, S("n"), ERR));
    T(NUL_, mqlite_store_unsubscribe(s, NULL, 1, ERR));
    T(MQLITE_INVALID_NAME, mqlite_store_unsubscribe(s, S(BAD), ERR));
    T(INV, mqlite_store_unsubscribe(s, S("n"), ERR)); /* attached */
    T(MQLITE_NOT_FOUND, mqlite_store_unsubscribe(s, S("none"), ERR));
    T(MQLITE_OK, mqlite_store_close(s, ERR));
    T(MQLITE_CLOSED, mqlite_topic_publish(t, m, &u, ERR));
    T(MQLITE_CLOSED, mqlite_topic_publish_async(t, m, cb, NULL, NULL, ERR));
    T(MQLITE_CLOSED, mqlite_store_subscribe(s, S("t.>"), S("n2"), 1, NULL, 0, NULL, &qout, ERR));
    T(MQLITE_CLOSED, mqlite_store_unsubscribe(s, S("n"), ERR));
    T(MQLITE_CLOSED, mqlite_store_topic(s, S("t.x"), &tout, ERR));
    mqlite_topic_free(NULL);
    mqlite_topic_free(t);
    mqlite_queue_free(q); /* detaching after close is quiet */
    mqlite_message_free(m);
    mqlite_store_free(s);
}

/* Selective queue consumers: NULLs, bad UTF-8, SIZE_MAX, a selector that does not parse (a clear
 * error naming the position), an unknown mode, and after close; a refused call creates nothing
 * and leaves the queue's messages where they were. */
static void selective_consumer(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "sel");
    uint64_t u;
    T(MQLITE_OK, mqlite_queue_send_bytes(q, B, 4, &u, ERR));
    T(MQLITE_OK, mqlite_queue_send_bytes(q, B, 4, &u, ERR));
    mqlite_consumer *c = NULL, *csent = (mqlite_consumer *)&c, *cout = csent;
    T(NUL_, mqlite_queue_consumer_selector(NULL, S("k = 1"), MQLITE_ACK_EXPLICIT, &cout, ERR));
    T(NUL_, mqlite_queue_consumer_selector(q, S("k = 1"), MQLITE_ACK_EXPLICIT, NULL, ERR));
    T(UTF, mqlite_queue_consumer_selector(q, S(BAD), MQLITE_ACK_EXPLICIT, &cout, ERR));
    T(INV, mqlite_queue_consumer_selector(q, "k = 1", SIZE_MAX, MQLITE_ACK_EXPLICIT, &cout, ERR));
    T(INV, mqlite_queue_consumer_selector(q, S("k = 1"), 77, &cout, ERR));
    T(INV, mqlite_queue_consumer_selector(q, S("k >> 1"), MQLITE_ACK_EXPLICIT, &cout, ERR));
    /* The syntax error says where and what: the character position and what was expected. */
    mqlite_error *e = NULL;
    V(mqlite_queue_consumer_selector(q, S("k >> 1"), MQLITE_ACK_EXPLICIT, &cout, &e) == INV);
    const char *msg = mqlite_error_message(e);
    V(strstr(msg, "selector") && strstr(msg, "character 4") && strstr(msg, "expected"));
    if (!strstr(msg, "character 4")) fprintf(stderr, "selector error: %s\n", msg);
    mqlite_error_free(e);
    V(cout == csent);
    mqlite_stats st;
    T(MQLITE_OK, mqlite_queue_stats(q, &st, ERR));
    V(st.depth == 2 && st.in_flight == 0 && st.messages == 2);
    /* NULL selects every message: both are still there. */
    T(MQLITE_OK, mqlite_queue_consumer_selector(q, NULL, 0, MQLITE_ACK_AUTO, &c, ERR));
    mqlite_delivery *d = NULL;
    for (int i = 0; i < 2; i++) {
        T(MQLITE_OK, mqlite_consumer_receive(c, 0, &d, ERR));
        mqlite_delivery_free(d);
    }
    T(MQLITE_TIMEOUT, mqlite_consumer_receive(c, 0, &d, ERR));
    mqlite_consumer_free(c);
    T(MQLITE_OK, mqlite_store_close(s, ERR));
    T(MQLITE_CLOSED, mqlite_queue_consumer_selector(q, S("k = 1"), MQLITE_ACK_EXPLICIT, &cout, ERR));
    V(cout == csent);
    mqlite_queue_free(q);
    mqlite_store_free(s);
}

int main(void) {
    char *dir = temp_dir();
    errors_and_version();
    options();
    messages();
    store_and_queue(dir);
    settle_after_close(dir);
    topics(dir);
    selective_consumer(dir);
    remove_dir(dir);
    return finish("test_abi");
}
