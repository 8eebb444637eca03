/*
 * timer.h - deadlines for one worker: a hashed wheel of 100 ms slots
 * driven by one periodic ring timeout, so arming and cancelling are
 * O(1) and thousands of idle sessions cost nothing per tick.
 */
#ifndef CORE_TIMER_H
#define CORE_TIMER_H

#include <stdint.h>

#define TIMER_TICK_MS 100
#define TIMER_SLOTS 1024

struct timer;
typedef void timer_fn(struct timer *t);

struct timer {
	struct timer *next, **pprev;	/* in a slot list when armed */
	uint64_t due;			/* tick number */
	timer_fn *fire;
};

struct timer_wheel {
	struct timer *slot[TIMER_SLOTS];
	uint64_t now;			/* current tick */
	uint64_t start_ms;		/* monotonic ms at tick 0 */
	uint64_t turn_ms;		/* ms after start_ms when the ring woke */
	int in_turn;			/* turn_ms is the clock of the turn now running */
	unsigned armed;
};

void timer_wheel_init(struct timer_wheel *w);
/* Monotonic milliseconds. */
uint64_t timer_now_ms(void);
static inline void timer_init(struct timer *t, timer_fn *fire) { t->next = 0; t->pprev = 0; t->fire = fire; }
static inline int timer_armed(const struct timer *t) { return t->pprev != 0; }
/* (Re)arms t to fire after ms (rounded up to a tick; 0 fires next tick). */
void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t ms);
void timer_cancel(struct timer_wheel *w, struct timer *t);
/* Advances to the current time, firing every due timer. */
void timer_wheel_advance(struct timer_wheel *w);
/*
 * The ring's turn, from its wake-up to its next wait: timers armed in
 * it count from the clock read at its start; outside one, from now.
 */
void timer_wheel_turn_begin(struct timer_wheel *w);
static inline void timer_wheel_turn_end(struct timer_wheel *w) { w->in_turn = 0; }

#endif
