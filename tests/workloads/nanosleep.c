/* nanosleep: exactly 200 nanosleep(20 ms) calls, 50 on each of 4 threads.
 * In C, not Go, because Go's sysmon also sleeps with nanosleep (its usleep)
 * and would add calls of its own to the same histogram: here the 200 calls
 * are the only ones, so p50 must be 20 ms plus the timer slack. */
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *sleeper(void *arg) {
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 50; i++)
        syscall(SYS_nanosleep, &ts, 0); /* glibc's nanosleep() is clock_nanosleep */
    return 0;
}

int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], 0, sleeper, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], 0);
    return 0;
}
