// SPDX-License-Identifier: Apache-2.0
/*
 * The runtime's helper threads (pool_i.h). One task at a time: a caller
 * posts it, runs it itself, then withdraws it and waits for the workers
 * that took it. A caller that finds a task posted runs its own alone, so
 * concurrent large reads never queue behind each other.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "pool_i.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;	/* a task was posted, or stop */
	pthread_cond_t idle;	/* active went to 0 */
	pthread_t threads[POOL_MAX_WORKERS];
	unsigned started;	/* workers running */
	unsigned users;		/* volumes open */
	bool tried;		/* workers were started (or failed to) */
	bool stop;
	void (*fn)(void *);	/* the posted task, or NULL */
	void *arg;
	unsigned long gen;	/* tasks posted so far */
	unsigned long active;	/* workers in fn */
} g_pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
};

/* How long a thread waits awake for the next task or for its helpers. */
#define SPIN_NS 50000

static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

/*
 * The child of fork() has none of the parent's threads: it forgets them
 * (their stacks stay mapped, as with any library's threads) and starts
 * its own when it needs them. The lock may have been held by a worker at
 * the fork, so it is made anew, as in the preload layer.
 */
static void atfork_child(void)
{
	pthread_mutex_init(&g_pool.lock, NULL);
	pthread_cond_init(&g_pool.work, NULL);
	pthread_cond_init(&g_pool.idle, NULL);
	g_pool.started = 0;
	g_pool.tried = false;
	g_pool.stop = false;
	g_pool.fn = NULL;
	g_pool.arg = NULL;
	g_pool.active = 0;
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Wait up to SPIN_NS, without the lock, while *@word is @val (@eq) or is
 * not: a program reading a large file asks again within microseconds, and
 * the threads of one read end within microseconds of each other, sooner
 * than a sleeping thread would wake. The caller rechecks under the lock.
 */
static void spin_while(const unsigned long *word, unsigned long val, bool eq)
{
	int64_t end = mono_ns() + SPIN_NS;

	do {
		for (int k = 0; k < 64; k++) {
			if ((__atomic_load_n(word, __ATOMIC_RELAXED) == val) != eq)
				return;
			cpu_relax();
		}
		sched_yield(); /* to a thread of ours on this CPU, if any */
	} while (mono_ns() < end);
}

static void *worker(void *unused)
{
	unsigned long seen;

	pthread_mutex_lock(&g_pool.lock);
	seen = g_pool.fn ? g_pool.gen - 1 : g_pool.gen; /* take one posted */
	for (;;) {
		void (*fn)(void *);
		void *arg;

		if (!g_pool.stop && (!g_pool.fn || g_pool.gen == seen)) {
			pthread_mutex_unlock(&g_pool.lock);
			spin_while(&g_pool.gen, seen, true);
			pthread_mutex_lock(&g_pool.lock);
		}
		while (!g_pool.stop && (!g_pool.fn || g_pool.gen == seen))
			pthread_cond_wait(&g_pool.work, &g_pool.lock);
		if (g_pool.stop)
			break;
		seen = g_pool.gen;
		fn = g_pool.fn;
		arg = g_pool.arg;
		__atomic_store_n(&g_pool.active, g_pool.active + 1,
				 __ATOMIC_RELAXED);
		pthread_mutex_unlock(&g_pool.lock);
		fn(arg);
		pthread_mutex_lock(&g_pool.lock);
		__atomic_store_n(&g_pool.active, g_pool.active - 1,
				 __ATOMIC_RELAXED);
		if (!g_pool.active)
			pthread_cond_broadcast(&g_pool.idle);
	}
	pthread_mutex_unlock(&g_pool.lock);
	return NULL;
}

static unsigned usable_cpus(void)
{
	cpu_set_t set;
	long n;

	if (!sched_getaffinity(0, sizeof(set), &set))
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/*
 * Start the workers, g_pool.lock held. They inherit a mask that blocks
 * every signal: the host program's handlers run in its own threads only.
 */
static void start_workers(void)
{
	unsigned want = usable_cpus();
	sigset_t all, old;

	g_pool.tried = true;
	want = want > POOL_MAX_WORKERS + 1 ? POOL_MAX_WORKERS : want - 1;
	if (!want)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (g_pool.started < want &&
	       !pthread_create(&g_pool.threads[g_pool.started], NULL, worker,
			       NULL)) {
		pthread_setname_np(g_pool.threads[g_pool.started],
				   "fshield-worker");
		g_pool.started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void fshield_pool_ref(void)
{
	pthread_once(&g_atfork_once, register_atfork);
	pthread_mutex_lock(&g_pool.lock);
	g_pool.users++;
	pthread_mutex_unlock(&g_pool.lock);
}

void fshield_pool_unref(void)
{
	pthread_t threads[POOL_MAX_WORKERS];
	unsigned count;

	pthread_mutex_lock(&g_pool.lock);
	if (--g_pool.users || !g_pool.started) {
		if (!g_pool.users)
			g_pool.tried = false;
		pthread_mutex_unlock(&g_pool.lock);
		return;
	}
	count = g_pool.started;
	for (unsigned i = 0; i < count; i++)
		threads[i] = g_pool.threads[i];
	g_pool.started = 0; /* ours to join, nobody else's */
	g_pool.stop = true;
	pthread_cond_broadcast(&g_pool.work);
	pthread_mutex_unlock(&g_pool.lock);
	for (unsigned i = 0; i < count; i++)
		pthread_join(threads[i], NULL);
	/* Meanwhile, fshield_pool_run() ran its tasks alone (stop). */
	pthread_mutex_lock(&g_pool.lock);
	g_pool.tried = false;
	g_pool.stop = false;
	pthread_mutex_unlock(&g_pool.lock);
}

void fshield_pool_run(void (*fn)(void *arg), void *arg)
{
	int cancel;

	pthread_mutex_lock(&g_pool.lock);
	if (g_pool.users && !g_pool.tried && !g_pool.stop)
		start_workers();
	if (!g_pool.started || g_pool.stop || g_pool.fn) {
		pthread_mutex_unlock(&g_pool.lock);
		fn(arg);
		return;
	}
	/* The task points into our stack: no cancellation until withdrawn. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	g_pool.fn = fn;
	g_pool.arg = arg;
	__atomic_store_n(&g_pool.gen, g_pool.gen + 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&g_pool.work);
	pthread_mutex_unlock(&g_pool.lock);
	fn(arg);
	/* Withdrawn, so that no worker takes it now; wait for those that did. */
	spin_while(&g_pool.active, 0, false);
	pthread_mutex_lock(&g_pool.lock);
	g_pool.fn = NULL;
	g_pool.arg = NULL;
	while (g_pool.active)
		pthread_cond_wait(&g_pool.idle, &g_pool.lock);
	pthread_mutex_unlock(&g_pool.lock);
	pthread_setcancelstate(cancel, NULL);
}
