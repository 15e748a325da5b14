/* Several processes, one store, from C: an owner process (forked), then the producer and the
 * consumer examples (fork + exec) at the same time, both its clients; the owner is SIGKILLed
 * mid-stream (one of them takes the store over, the other reconnects; when the producer ends,
 * its close hands the store over to the consumer, or the other way round). Afterwards every
 * message sent was consumed exactly once (acked, or dead-lettered and read) or is in the store,
 * once: nothing lost, nothing stored or acked twice. An ack whose owner died in flight may or
 * may not have been made durable (the consumer counts those "in doubt"): the counts must add
 * up within them.
 *
 *   test_multiproc PRODUCER CONSUMER     (the examples' binaries)
 */
#define _GNU_SOURCE
#include "common.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define COUNT 3000

/* The owner: opens the store (owner only), says so on `ready`, then waits to be killed. */
static void owner_main(const char *dir, int ready) {
    mqlite_store_options *o = mqlite_store_options_new();
    mqlite_store *s = NULL;
    if (mqlite_store_options_set_open_as(o, MQLITE_OPEN_AS_OWNER, 0, NULL) != MQLITE_OK ||
        mqlite_store_open(dir, strlen(dir), o, &s, NULL) != MQLITE_OK)
        _exit(3);
    mqlite_store_options_free(o);
    if (write(ready, "R", 1) != 1) _exit(4);
    for (;;) pause();
}

/* Runs `prog dir [arg]` with its stdout sent to `out` (a file path). */
static pid_t spawn(const char *prog, const char *dir, const char *arg, const char *out) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(out, "w", stdout);
        if (!f) _exit(5);
        execl(prog, prog, dir, arg, (char *)NULL);
        _exit(6);
    }
    return pid;
}

static int exit_code(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Statistics of queue `name` of the store in `dir`, seen through a client of its owner (its
 * counters count since that owner opened the store). */
static int stats_as_client(const char *dir, const char *name, mqlite_stats *st) {
    mqlite_store_options *o = mqlite_store_options_new();
    mqlite_store *s = NULL;
    int n = -1;
    if (mqlite_store_options_set_open_as(o, MQLITE_OPEN_AS_CLIENT, 10000, NULL) == MQLITE_OK &&
        mqlite_store_open(dir, strlen(dir), o, &s, NULL) == MQLITE_OK) {
        mqlite_queue *q = NULL;
        if (mqlite_store_queue(s, name, strlen(name), &q, NULL) == MQLITE_OK &&
            mqlite_queue_stats(q, st, NULL) == MQLITE_OK)
            n = 0;
        mqlite_queue_free(q);
        mqlite_store_close(s, NULL);
        mqlite_store_free(s);
    }
    mqlite_store_options_free(o);
    return n;
}

/* Receives and acks everything left in `q`; counts it, and flags a body seen twice. */
static int drain(mqlite_queue *q, char *seen, int *twice) {
    int n = 0;
    for (;;) {
        mqlite_delivery *d = NULL;
        if (mqlite_queue_receive(q, 0, &d, NULL) != MQLITE_OK) break;
        const mqlite_message *m = mqlite_delivery_message(d);
        mqlite_value v;
        if (mqlite_message_property(m, "n", 1, &v) == MQLITE_OK && v.int_value >= 0 &&
            v.int_value < COUNT) {
            if (seen[v.int_value]) (*twice)++;
            seen[v.int_value] = 1;
        }
        mqlite_delivery_ack(d, NULL);
        mqlite_delivery_free(d);
        n++;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PRODUCER CONSUMER\n", argv[0]);
        return 2;
    }
    char *dir = temp_dir();
    char prod_out[4200], cons_out[4200], count[16];
    snprintf(prod_out, sizeof prod_out, "%s.producer.txt", dir);
    snprintf(cons_out, sizeof cons_out, "%s.consumer.txt", dir);
    snprintf(count, sizeof count, "%d", COUNT);

    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t owner = fork();
    if (owner == 0) {
        close(pipefd[0]);
        owner_main(dir, pipefd[1]);
    }
    close(pipefd[1]);
    char c = 0;
    CHECK(read(pipefd[0], &c, 1) == 1 && c == 'R');
    close(pipefd[0]);

    /* Both at once: the consumer stops once no message came for 5 s (the producer is done). */
    pid_t producer = spawn(argv[1], dir, count, prod_out);
    pid_t consumer = spawn(argv[2], dir, "5000", cons_out);
    /* Mid-stream: once a sixth of the messages are stored and a twelfth acked, the owner dies. */
    struct timespec tick = {0, 2 * 1000 * 1000};
    mqlite_stats st = {0};
    for (int i = 0; i < 15000 && (st.enqueued < COUNT / 6 || st.acked < COUNT / 12); i++) {
        if (stats_as_client(dir, "orders", &st) != 0) memset(&st, 0, sizeof st);
        nanosleep(&tick, NULL);
    }
    fprintf(stderr, "test_multiproc: owner killed after %llu stored, %llu acked\n",
            (unsigned long long)st.enqueued, (unsigned long long)st.acked);
    CHECK(st.enqueued >= COUNT / 6 && st.enqueued < COUNT && st.acked >= COUNT / 12);
    CHECK(kill(owner, SIGKILL) == 0);
    CHECK(exit_code(owner) == 128 + SIGKILL);
    /* Both go on (sends in flight are resent; deliveries of the dead owner come back). */
    CHECK(exit_code(producer) == 0);
    CHECK(exit_code(consumer) == 0);

    int acked = -1, nacked = -1, dead = -1, sent = -1, in_doubt = 0;
    FILE *f = fopen(prod_out, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "producer: sent %d", &sent) == 1) break;
    if (f) fclose(f);
    f = fopen(cons_out, "r");
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "consumer: acked %d, nacked %d times, %d dead letters", &acked, &nacked,
               &dead);
        sscanf(line, "consumer: %d acks in doubt", &in_doubt);
    }
    if (f) fclose(f);
    CHECK(sent == COUNT);
    CHECK(acked >= 0 && dead >= 0);

    /* What the consumer did not take is still there, once. */
    char *seen = calloc(COUNT, 1);
    int twice = 0;
    mqlite_store *s = open_store(dir, NULL);
    mqlite_queue *orders = open_queue(s, "orders");
    mqlite_queue *dlq = open_queue(s, "DLQ");
    int left = drain(orders, seen, &twice) + drain(dlq, seen, &twice);
    CHECK(twice == 0);
    /* Every message sent: acked by the consumer, dead-lettered (read by it), or left; an ack in
     * doubt may have taken effect or not. More would be a message consumed twice, fewer one
     * lost. */
    fprintf(stderr,
            "test_multiproc: acked %d + dead letters %d + left %d (+ %d acks in doubt) for %d "
            "sent\n",
            acked, dead, left, in_doubt, COUNT);
    CHECK(acked + dead + left <= COUNT && COUNT <= acked + dead + left + in_doubt);
    CHECK(acked > COUNT / 2);
    mqlite_queue_free(orders);
    mqlite_queue_free(dlq);
    OK(mqlite_store_close(s, ERR));
    mqlite_store_free(s);
    free(seen);
    unlink(prod_out);
    unlink(cons_out);
    remove_dir(dir);
    return finish("test_multiproc");
}
