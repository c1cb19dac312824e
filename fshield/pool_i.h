/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runtime's helper threads: a few workers, one fewer than the usable
 * CPUs (at most POOL_MAX_WORKERS), started at the first fshield_pool_run()
 * after a volume opened and joined when the last volume closes. They block
 * every signal and never call out of the library: they only run the tasks
 * given to fshield_pool_run(). A forked child has none until it asks.
 * A worker stays awake (spinning, yielding) for 50 us after a task before
 * it sleeps: a program reading a large file sequentially posts the next
 * task sooner than a sleeping thread wakes.
 */
#ifndef FSHIELD_POOL_I_H
#define FSHIELD_POOL_I_H

#define POOL_MAX_WORKERS 3

/* A volume opens (no thread starts yet). */
void fshield_pool_ref(void);

/* A volume closed; the last one stops and joins the workers. */
void fshield_pool_unref(void);

/*
 * Call @fn(@arg) in this thread and, at the same time, in every idle worker
 * (none when another task runs or no worker could start); return once
 * every call returned. @fn takes its share of the work from @arg (an
 * atomic counter), so it must be safe to call concurrently and must work
 * when called once, alone.
 */
void fshield_pool_run(void (*fn)(void *arg), void *arg);

#endif
