/* Several processes, one store, from C: an owner process (forked), the producer example
 * (fork + exec) as its client, the owner SIGKILLed mid-stream (the producer takes the store
 * over and goes on), then the consumer example (fork + exec). Afterwards every message sent
 * was consumed or is in the store, once: nothing lost, nothing stored twice.
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

/* Messages waiting in `name` of the store in `dir`, seen through a client of its owner. */
static long depth_as_client(const char *dir, const char *name) {
    mqlite_store_options *o = mqlite_store_options_new();
    mqlite_store *s = NULL;
    long n = -1;
    if (mqlite_store_options_set_open_as(o, MQLITE_OPEN_AS_CLIENT, 10000, NULL) == MQLITE_OK &&
        mqlite_store_open(dir, strlen(dir), o, &s, NULL) == MQLITE_OK) {
        mqlite_queue *q = NULL;
        mqlite_stats st;
        if (mqlite_store_queue(s, name, strlen(name), &q, NULL) == MQLITE_OK &&
            mqlite_queue_stats(q, &st, NULL) == MQLITE_OK)
            n = (long)st.messages;
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

    pid_t producer = spawn(argv[1], dir, count, prod_out);
    /* Mid-stream: once a sixth of the messages are stored, the owner dies. */
    struct timespec tick = {0, 2 * 1000 * 1000};
    long depth = 0;
    for (int i = 0; i < 15000 && depth < COUNT / 6; i++) {
        depth = depth_as_client(dir, "orders");
        nanosleep(&tick, NULL);
    }
    CHECK(depth >= COUNT / 6 && depth < COUNT);
    CHECK(kill(owner, SIGKILL) == 0);
    CHECK(exit_code(owner) == 128 + SIGKILL);
    /* The producer, now the owner, finishes every send (those in flight are resent). The
     * consumer runs after it: the example exits at its first failed settle, and a delivery
     * handed out by an owner that closes meanwhile can no longer be settled (by design). */
    CHECK(exit_code(producer) == 0);
    pid_t consumer = spawn(argv[2], dir, NULL, cons_out);
    CHECK(exit_code(consumer) == 0);

    int acked = -1, nacked = -1, dead = -1, sent = -1;
    FILE *f = fopen(prod_out, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "producer: sent %d", &sent) == 1) break;
    if (f) fclose(f);
    f = fopen(cons_out, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "consumer: acked %d, nacked %d times, %d dead letters", &acked, &nacked,
                   &dead) == 3)
            break;
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
    /* Every message sent: acked by the consumer, dead-lettered (read by it), or left. */
    if (acked + dead + left != COUNT)
        fprintf(stderr, "acked %d + dead letters %d + left %d != sent %d\n", acked, dead, left,
                COUNT);
    CHECK(acked + dead + left == COUNT);
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
