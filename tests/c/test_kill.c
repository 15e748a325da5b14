/* A child process does async sends and reports each id whose callback said MQLITE_OK over a
 * pipe; the parent SIGKILLs it mid-stream, reopens the store and checks that every reported id
 * is there (the durability contract: a send whose callback reported success is durable). Several cycles on the
 * same store, so each open also recovers the previous crash. */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

enum { CYCLES = 5, MAX_IDS = 1 << 21 };

static int report_fd = -1;

static void on_sent(void *ud, mqlite_status status, uint64_t id, const mqlite_error *err) {
    (void)ud;
    (void)err;
    if (status != MQLITE_OK) return;
    /* 8-byte writes to a pipe are atomic. */
    ssize_t w = write(report_fd, &id, sizeof id);
    (void)w;
}

static void child(const char *dir) {
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *q = open_queue(s, "k");
    mqlite_message *m = NULL;
    if (mqlite_message_new((const uint8_t *)"kill-me-maybe", 13, &m, NULL) != MQLITE_OK) _exit(3);
    for (;;) {
        mqlite_status st = mqlite_queue_send_async(q, m, on_sent, NULL, NULL, NULL);
        if (st != MQLITE_OK) _exit(4);
    }
}

static uint64_t *acked;
static size_t n_acked;

static int read_ids(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return r;
    uint64_t buf[512];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0) return -1; /* EOF */
    /* a partial id cannot happen: writes of 8 bytes are atomic and reads take whole writes */
    for (ssize_t i = 0; i < got / 8 && n_acked < MAX_IDS; i++) acked[n_acked++] = buf[i];
    return 1;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    char *dir = temp_dir();
    acked = malloc(sizeof(uint64_t) * MAX_IDS);
    srand((unsigned)time(NULL));
    size_t before_cycle = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        int fds[2];
        if (pipe(fds) != 0) return 2;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            report_fd = fds[1];
            child(dir);
        }
        close(fds[1]);
        /* wait for the first acks, then kill at a random moment 20-220 ms later */
        long start = now_ms();
        while (n_acked == before_cycle && now_ms() - start < 20000) read_ids(fds[0], 50);
        long kill_at = now_ms() + 20 + rand() % 200;
        while (now_ms() < kill_at) read_ids(fds[0], 5);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read_ids(fds[0], 1000) > 0) {
        }
        close(fds[0]);
        CHECK(n_acked > before_cycle);
        before_cycle = n_acked;

        /* reopen (the lock died with the child) and check every acknowledged id is present */
        mqlite_store *s = open_store(dir, NULL);
        mqlite_queue *q = open_queue(s, "k");
        mqlite_message **all = malloc(sizeof(mqlite_message *) * MAX_IDS);
        size_t n = 0;
        OK(mqlite_queue_browse(q, MAX_IDS, all, &n, ERR));
        uint64_t *present = malloc(sizeof(uint64_t) * (n + 1));
        for (size_t i = 0; i < n; i++) {
            present[i] = mqlite_message_id(all[i]);
            mqlite_message_free(all[i]);
        }
        free(all);
        qsort(present, n, sizeof(uint64_t), cmp_u64);
        size_t lost = 0;
        for (size_t i = 0; i < n_acked; i++)
            if (!bsearch(&acked[i], present, n, sizeof(uint64_t), cmp_u64)) lost++;
        CHECK(n < MAX_IDS); /* else the browse may have cut stored messages off */
        CHECK(lost == 0);
        CHECK(n >= n_acked);
        printf("cycle %d: %zu acknowledged, %zu stored, %zu lost\n", cycle, n_acked, n, lost);
        free(present);
        /* Checked: start the next cycle from an empty queue, so that the browse above always
         * sees every stored message however fast the child was (MAX_IDS bounds one cycle only). */
        uint64_t purged = 0;
        OK(mqlite_queue_purge(q, &purged, ERR));
        CHECK(purged == n);
        n_acked = 0;
        before_cycle = 0;
        mqlite_queue_free(q);
        mqlite_store_free(s);
    }
    free(acked);
    remove_dir(dir);
    return finish("test_kill");
}
