/*
 * timer.c - the hashed timer wheel (see timer.h). A timer due beyond one
 * revolution stays in its slot and is skipped until its tick comes, so
 * any deadline fits without a second level.
 */
#include <time.h>
#include "timer.h"

uint64_t
timer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
timer_wheel_init(struct timer_wheel *w)
{
	for (unsigned i = 0; i < TIMER_SLOTS; i++)
		w->slot[i] = 0;
	w->now = 0;
	w->armed = 0;
	w->start_ms = timer_now_ms();
	w->turn_ms = 0;
	w->in_turn = 0;
}

void
timer_wheel_turn_begin(struct timer_wheel *w)
{
	w->turn_ms = timer_now_ms() - w->start_ms;
	w->in_turn = 1;
}

void
timer_cancel(struct timer_wheel *w, struct timer *t)
{
	if (!t->pprev)
		return;
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	t->next = 0;
	t->pprev = 0;
	w->armed--;
}

void
timer_arm(struct timer_wheel *w, struct timer *t, uint64_t ms)
{
	struct timer **head;
	/*
	 * In a turn, the clock from when the ring woke, not a fresh read:
	 * sessions arm timers several times a message. So a deadline counts
	 * from up to one turn's work before the call. Rounded up to ticks.
	 */
	uint64_t elapsed = w->in_turn ? w->turn_ms : timer_now_ms() - w->start_ms;
	uint64_t due = (elapsed + ms + TIMER_TICK_MS - 1) / TIMER_TICK_MS;

	timer_cancel(w, t);
	if (due <= w->now)
		due = w->now + 1;
	t->due = due;
	head = &w->slot[due % TIMER_SLOTS];
	t->next = *head;
	if (t->next)
		t->next->pprev = &t->next;
	t->pprev = head;
	*head = t;
	w->armed++;
}

void
timer_wheel_advance(struct timer_wheel *w)
{
	uint64_t target = (timer_now_ms() - w->start_ms) / TIMER_TICK_MS;

	while (w->now < target) {
		struct timer **pp;

		w->now++;
		pp = &w->slot[w->now % TIMER_SLOTS];
		while (*pp) {
			struct timer *t = *pp;
			if (t->due <= w->now) {
				timer_cancel(w, t);
				t->fire(t);
				/* fire may have re-armed or freed others: restart the slot. */
				pp = &w->slot[w->now % TIMER_SLOTS];
			} else {
				pp = &t->next;
			}
		}
	}
}
