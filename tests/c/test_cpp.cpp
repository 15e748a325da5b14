// The header from C++17: RAII wrappers, several producer threads sharing one queue handle,
// async sends completing into a std::condition_variable, a listener, and status checks.
#include <mqlite.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <unistd.h>

static int failures = 0;
static int checks = 0;
#define CHECK(c)                                                                   \
    do {                                                                           \
        ++checks;                                                                  \
        if (!(c)) {                                                                \
            ++failures;                                                            \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
        }                                                                          \
    } while (0)

struct Error {
    mqlite_error *e = nullptr;
    ~Error() { mqlite_error_free(e); }
    mqlite_error **out() { return &e; }
};

template <typename T, void (*F)(T *)>
struct Deleter {
    void operator()(T *p) const { F(p); }
};
using Store = std::unique_ptr<mqlite_store, Deleter<mqlite_store, mqlite_store_free>>;
using Queue = std::unique_ptr<mqlite_queue, Deleter<mqlite_queue, mqlite_queue_free>>;
using Message = std::unique_ptr<mqlite_message, Deleter<mqlite_message, mqlite_message_free>>;
using Delivery = std::unique_ptr<mqlite_delivery, Deleter<mqlite_delivery, mqlite_delivery_free>>;
using Listener = std::unique_ptr<mqlite_listener, Deleter<mqlite_listener, mqlite_listener_free>>;

static void ok(mqlite_status s, const Error &e, const char *what) {
    ++checks;
    if (s != MQLITE_OK) {
        ++failures;
        std::fprintf(stderr, "%s: %s: %s\n", what, mqlite_status_str(s), mqlite_error_message(e.e));
    }
}

struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    int remaining = 0;
    std::set<uint64_t> ids;
    int duplicates = 0;
    int errors = 0;
};

int main() {
    char tmpl[] = "/tmp/mqlite-cpptest-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    {
        Error e;
        mqlite_store *raw = nullptr;
        ok(mqlite_store_open(dir.data(), dir.size(), nullptr, &raw, e.out()), e, "open");
        Store store(raw);
        mqlite_queue *rq = nullptr;
        const std::string name = "cpp";
        ok(mqlite_store_queue(store.get(), name.data(), name.size(), &rq, e.out()), e, "queue");
        Queue q(rq);

        // 4 threads x 2,000 async sends on one shared queue handle.
        Pending p;
        const int threads = 4, per = 2000;
        p.remaining = threads * per;
        auto on_sent = [](void *ud, mqlite_status st, uint64_t id, const mqlite_error *) {
            auto *pp = static_cast<Pending *>(ud);
            std::lock_guard<std::mutex> g(pp->mu);
            if (st != MQLITE_OK) pp->errors++;
            if (!pp->ids.insert(id).second) pp->duplicates++;
            if (--pp->remaining == 0) pp->cv.notify_all();
        };
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; t++) {
            ts.emplace_back([&, t] {
                for (int i = 0; i < per; i++) {
                    std::string body = "t" + std::to_string(t) + "-" + std::to_string(i);
                    mqlite_message *m = nullptr;
                    Error e2;
                    ok(mqlite_message_new(reinterpret_cast<const uint8_t *>(body.data()), body.size(), &m, e2.out()), e2, "new");
                    Message msg(m);
                    ok(mqlite_queue_send_async(q.get(), msg.get(), on_sent, &p, nullptr, e2.out()), e2, "send_async");
                }
            });
        }
        for (auto &t : ts) t.join();
        {
            std::unique_lock<std::mutex> g(p.mu);
            p.cv.wait(g, [&] { return p.remaining == 0; });
        }
        CHECK(p.errors == 0);
        CHECK(p.duplicates == 0);
        CHECK(p.ids.size() == size_t(threads * per));

        // Batch receive + batch ack drain all but 200 (one fsync per batch, not per message) ...
        const int by_listener = 200;
        int left = threads * per;
        std::vector<mqlite_delivery *> batch(500);
        while (left > by_listener) {
            size_t n = 0;
            size_t want = std::min<size_t>(batch.size(), size_t(left - by_listener));
            ok(mqlite_queue_receive_batch(q.get(), want, 1000, batch.data(), &n, e.out()), e, "receive_batch");
            ok(mqlite_queue_ack_batch(q.get(), batch.data(), n, e.out()), e, "ack_batch");
            for (size_t i = 0; i < n; i++) mqlite_delivery_free(batch[i]);
            left -= int(n);
        }
        // ... and a listener (each ack durable on its own) the rest; main waits on a condvar.
        struct Drain {
            std::mutex mu;
            std::condition_variable cv;
            int seen = 0;
        } drain;
        auto handler = [](void *ud, const mqlite_message *m, uint32_t) -> int32_t {
            auto *d = static_cast<Drain *>(ud);
            const uint8_t *b = nullptr;
            size_t len = 0;
            if (mqlite_message_body(m, &b, &len) != MQLITE_OK || len < 4 || b[0] != 't') return 1;
            std::lock_guard<std::mutex> g(d->mu);
            d->seen++;
            d->cv.notify_all();
            return 0;
        };
        mqlite_listener *rl = nullptr;
        ok(mqlite_queue_listen(q.get(), handler, &drain, nullptr, &rl, e.out()), e, "listen");
        Listener listener(rl);
        {
            std::unique_lock<std::mutex> g(drain.mu);
            drain.cv.wait(g, [&] { return drain.seen == by_listener; });
        }
        listener.reset();
        mqlite_stats st{};
        ok(mqlite_queue_stats(q.get(), &st, e.out()), e, "stats");
        CHECK(st.messages == 0);
        CHECK(st.acked == uint64_t(threads * per));

        // Status codes map as documented.
        mqlite_delivery *d = nullptr;
        CHECK(mqlite_queue_receive(q.get(), 0, &d, nullptr) == MQLITE_TIMEOUT);
        CHECK(d == nullptr);
        CHECK(mqlite_queue_receive(nullptr, 0, &d, nullptr) == MQLITE_NULL_ARGUMENT);
        CHECK(std::string(mqlite_status_str(MQLITE_CLOSED)) == "closed");
        ok(mqlite_store_close(store.get(), e.out()), e, "close");
        CHECK(mqlite_queue_send_bytes(q.get(), reinterpret_cast<const uint8_t *>("x"), 1, nullptr, nullptr) == MQLITE_CLOSED);
    }
    std::string cmd = "rm -rf '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) return 2;
    std::printf("test_cpp: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
