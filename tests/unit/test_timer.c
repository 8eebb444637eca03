/*
 * test_timer.c - core/timer.c's clock for deadlines: during a ring's
 * turn a timer counts from the clock read when the turn began, outside
 * one from now. Time passing is made by moving the wheel's start back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "timer.h"

static int fired;

static void
fire(struct timer *t)
{
	(void)t;
	fired++;
}

static void
test_turn_clock(void **state)
{
	struct timer_wheel w;
	struct timer t;

	(void)state;
	timer_wheel_init(&w);
	timer_init(&t, fire);
	timer_wheel_turn_begin(&w);
	w.start_ms -= 1000;	/* a second of work inside the turn */
	timer_arm(&w, &t, 250);
	assert_int_equal(t.due, 3);	/* 0 + 250 ms, in 100 ms ticks rounded up */
	timer_wheel_turn_end(&w);
	timer_arm(&w, &t, 250);
	assert_true(t.due >= 13);	/* now: 1000 + 250 ms */
	timer_cancel(&w, &t);
	assert_int_equal(w.armed, 0);
}

/* A ring idle for a second, then a timer armed outside its turn: not due yet. */
static void
test_idle_ring(void **state)
{
	struct timer_wheel w;
	struct timer t;

	(void)state;
	timer_wheel_init(&w);
	timer_init(&t, fire);
	timer_wheel_turn_begin(&w);
	timer_wheel_turn_end(&w);
	w.start_ms -= 1000;
	fired = 0;
	timer_arm(&w, &t, 500);
	timer_wheel_advance(&w);
	assert_int_equal(fired, 0);
	assert_true(timer_armed(&t));
	w.start_ms -= 600;
	timer_wheel_advance(&w);
	assert_int_equal(fired, 1);
	assert_false(timer_armed(&t));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_turn_clock),
		cmocka_unit_test(test_idle_ring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
