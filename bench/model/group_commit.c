// The smallest group commit we could write, in C, to learn what this machine allows: no log,
// no checksums, no staging arena, one mutex. `docs/benchmarks.md` ("What an ideal group commit
// gets here") reports it next to `ballast bench --producers 16`.
//
//   gcc -O2 -pthread -o /tmp/group_commit bench/model/group_commit.c
//   /tmp/group_commit /var/tmp 1 2000 raw     # 4 KiB pwrite + fdatasync, one at a time
//   /tmp/group_commit /var/tmp 16 250 group   # 16 producers, 1 KiB each, wait for durable
//
// In `group` mode each producer copies a 1 KiB record and takes the next LSN under the mutex,
// wakes the committer, and sleeps until the durable watermark passes its LSN. The committer
// takes everything staged, writes it (rounded up to 4 KiB, 16 bytes of framing a record) at
// the next offset, fdatasyncs, publishes the watermark and broadcasts, as Ballast's
// committer does. The file is a fresh 64 MiB `fallocate`, as a segment is.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE_BYTES (64L << 20)
#define RECORD_SIZE_BYTES 1024
#define FRAME_SIZE_BYTES (RECORD_SIZE_BYTES + 16)

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER, durable_changed = PTHREAD_COND_INITIALIZER;
static uint64_t lsn_next, lsn_durable, staged_bytes, commits;
static int stopping, fd, records_each;
static char *write_buffer;
static double *latency_us;
static size_t latency_count;

static void *committer(void *unused) {
    (void)unused;
    long offset = 0;
    pthread_mutex_lock(&mutex);
    for (;;) {
        while (lsn_next == lsn_durable && !stopping) pthread_cond_wait(&work, &mutex);
        if (lsn_next == lsn_durable) break;
        uint64_t target = lsn_next;
        long size = (long)((staged_bytes + 4095) / 4096 * 4096);
        staged_bytes = 0;
        pthread_mutex_unlock(&mutex);
        if (pwrite(fd, write_buffer, size, offset) != size || fdatasync(fd) != 0) abort();
        offset += size;
        pthread_mutex_lock(&mutex);
        lsn_durable = target;
        commits++;
        pthread_cond_broadcast(&durable_changed);
    }
    pthread_mutex_unlock(&mutex);
    return NULL;
}

static void *producer(void *unused) {
    (void)unused;
    static const char record[RECORD_SIZE_BYTES];
    char staged[RECORD_SIZE_BYTES];
    double *mine = malloc(records_each * sizeof(double));
    for (int index = 0; index < records_each; index++) {
        double start = now_us();
        pthread_mutex_lock(&mutex);
        memcpy(staged, record, RECORD_SIZE_BYTES);
        uint64_t lsn = ++lsn_next;
        staged_bytes += FRAME_SIZE_BYTES;
        pthread_cond_signal(&work);
        while (lsn_durable < lsn) pthread_cond_wait(&durable_changed, &mutex);
        pthread_mutex_unlock(&mutex);
        mine[index] = now_us() - start;
    }
    pthread_mutex_lock(&mutex);
    memcpy(latency_us + latency_count, mine, records_each * sizeof(double));
    latency_count += records_each;
    pthread_mutex_unlock(&mutex);
    free(mine);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DIR PRODUCERS RECORDS_EACH raw|group\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/group-commit-model-%d", argv[1], getpid());
    int producers = atoi(argv[2]);
    records_each = atoi(argv[3]);
    int group = strcmp(argv[4], "group") == 0;
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    if (fd < 0 || fallocate(fd, 0, 0, FILE_SIZE_BYTES) != 0 || fsync(fd) != 0) {
        perror(path);
        return 1;
    }
    if (posix_memalign((void **)&write_buffer, 4096, 1 << 20) != 0) return 1;
    memset(write_buffer, 0x5a, 1 << 20);
    latency_us = malloc((size_t)producers * records_each * sizeof(double));
    double start = now_us();
    if (!group) {
        for (int index = 0; index < records_each; index++) {
            double begin = now_us();
            if (pwrite(fd, write_buffer, 4096, (long)index * 4096) != 4096 || fdatasync(fd) != 0)
                abort();
            latency_us[latency_count++] = now_us() - begin;
        }
        commits = records_each;
    } else {
        pthread_t committer_thread, threads[1024];
        pthread_create(&committer_thread, NULL, committer, NULL);
        for (int index = 0; index < producers; index++)
            pthread_create(&threads[index], NULL, producer, NULL);
        for (int index = 0; index < producers; index++) pthread_join(threads[index], NULL);
        pthread_mutex_lock(&mutex);
        stopping = 1;
        pthread_cond_signal(&work);
        pthread_mutex_unlock(&mutex);
        pthread_join(committer_thread, NULL);
    }
    double elapsed_us = now_us() - start;
    qsort(latency_us, latency_count, sizeof(double), compare);
    printf("%s, %d producer(s): %.0f records/s, %.0f commits/s, mean group %.2f, p50 %.0f us, "
           "p99 %.0f us\n",
           argv[4], group ? producers : 1, latency_count / elapsed_us * 1e6,
           commits / elapsed_us * 1e6, (double)latency_count / commits,
           latency_us[latency_count / 2], latency_us[latency_count * 99 / 100]);
    unlink(path);
    return 0;
}
