/*
 * load_report.c - mxload's output: the live progress line (stderr, a
 * terminal only) and the final report on stdout, as "key: value" lines
 * or one JSON object with the same fields. MB are 2^20 bytes of
 * accepted messages as stored (un-stuffed); latency runs from MAIL sent
 * to the reply to the final dot, in milliseconds. TLS: the mode, the
 * version and cipher of the last handshake (of the last worker that made
 * one), handshakes finished, resumed and failed.
 */
#include <stdio.h>
#include <string.h>
#include "load.h"

static const char *const load_tls_names[] = {
	[LOAD_TLS_NONE] = "none", [LOAD_TLS_STARTTLS] = "starttls", [LOAD_TLS_IMPLICIT] = "implicit",
};

void
load_stats_merge(struct load_stats *dst, const struct load_stats *src)
{
	dst->sent += src->sent;
	dst->accepted += src->accepted;
	for (unsigned i = 0; i < LOAD_CODES; i++)
		dst->refused[i] += src->refused[i];
	dst->rcpt_refused += src->rcpt_refused;
	dst->connect_errors += src->connect_errors;
	dst->disconnects += src->disconnects;
	dst->timeouts += src->timeouts;
	dst->connections += src->connections;
	dst->bytes_accepted += src->bytes_accepted;
	dst->tls_handshakes += src->tls_handshakes;
	dst->tls_resumed += src->tls_resumed;
	dst->tls_failures += src->tls_failures;
	dst->auth_failures += src->auth_failures;
	if (src->tls_version[0]) {
		memcpy(dst->tls_version, src->tls_version, sizeof(dst->tls_version));
		memcpy(dst->tls_cipher, src->tls_cipher, sizeof(dst->tls_cipher));
	}
	hist_merge(&dst->lat, &src->lat);
}

static uint64_t
load_refused_total(const struct load_stats *st)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < LOAD_CODES; i++)
		n += st->refused[i];
	return n;
}

static double
load_ms(const struct load_stats *st, double p)
{
	return (double)hist_percentile(&st->lat, p) / 1e6;
}

static void
load_report_text(const struct load_cfg *cfg, const struct load_stats *st, double el,
		 double mps, double mbps)
{
	int first = 1;

	printf("target:          %s\n", cfg->target_str);
	printf("connections:     %u (%u threads, %llu opened)\n", cfg->connections,
	       cfg->threads, (unsigned long long)st->connections);
	printf("size:            %llu\n", (unsigned long long)cfg->size);
	printf("recipients:      %u\n", cfg->recipients);
	printf("pipelining:      %s\n", cfg->pipelining ? "yes" : "no");
	printf("tls:             %s", load_tls_names[cfg->tls]);
	if (cfg->tls != LOAD_TLS_NONE)
		printf(" (%s, %s%s)", st->tls_version[0] ? st->tls_version : "no handshake",
		       st->tls_cipher[0] ? st->tls_cipher : "-", cfg->tls_resume ? ", --tls-resume" : "");
	printf("\n");
	if (cfg->tls != LOAD_TLS_NONE)
		printf("tls handshakes:  %llu (resumed %llu, failed %llu)\n",
		       (unsigned long long)st->tls_handshakes, (unsigned long long)st->tls_resumed,
		       (unsigned long long)st->tls_failures);
	if (cfg->msg.auth)
		printf("auth failures:   %llu\n", (unsigned long long)st->auth_failures);
	printf("sent:            %llu\n", (unsigned long long)st->sent);
	printf("accepted:        %llu\n", (unsigned long long)st->accepted);
	printf("refused:         ");
	for (unsigned i = 0; i < LOAD_CODES; i++) {
		if (st->refused[i] == 0)
			continue;
		printf("%s%03u: %llu", first ? "" : ", ", i, (unsigned long long)st->refused[i]);
		first = 0;
	}
	printf("%s\n", first ? "0" : "");
	printf("rcpt refused:    %llu\n", (unsigned long long)st->rcpt_refused);
	printf("connect errors:  %llu\n", (unsigned long long)st->connect_errors);
	printf("disconnects:     %llu\n", (unsigned long long)st->disconnects);
	printf("timeouts:        %llu\n", (unsigned long long)st->timeouts);
	printf("elapsed:         %.3f s\n", el);
	printf("msgs/s:          %.1f\n", mps);
	printf("MB/s:            %.2f\n", mbps);
	printf("latency ms:      p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f\n",
	       load_ms(st, 50), load_ms(st, 90), load_ms(st, 99), load_ms(st, 99.9));
}

static void
load_report_json(const struct load_cfg *cfg, const struct load_stats *st, double el,
		 double mps, double mbps)
{
	int first = 1;

	printf("{\"sent\":%llu,\"accepted\":%llu,\"refused\":{",
	       (unsigned long long)st->sent, (unsigned long long)st->accepted);
	for (unsigned i = 0; i < LOAD_CODES; i++) {
		if (st->refused[i] == 0)
			continue;
		printf("%s\"%03u\":%llu", first ? "" : ",", i, (unsigned long long)st->refused[i]);
		first = 0;
	}
	printf("},\"refused_total\":%llu,\"rcpt_refused\":%llu,\"connect_errors\":%llu,"
	       "\"disconnects\":%llu,\"timeouts\":%llu,\"elapsed_s\":%.3f,"
	       "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"bytes_accepted\":%llu,",
	       (unsigned long long)load_refused_total(st), (unsigned long long)st->rcpt_refused,
	       (unsigned long long)st->connect_errors, (unsigned long long)st->disconnects,
	       (unsigned long long)st->timeouts, el, mps, mbps,
	       (unsigned long long)st->bytes_accepted);
	printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f},",
	       load_ms(st, 50), load_ms(st, 90), load_ms(st, 99), load_ms(st, 99.9));
	printf("\"tls\":\"%s\",\"tls_resume\":%s,", load_tls_names[cfg->tls],
	       cfg->tls_resume ? "true" : "false");
	/* Names come from wolfSSL's tables: plain ASCII, nothing to escape. */
	if (st->tls_version[0])
		printf("\"tls_version\":\"%s\",\"tls_cipher\":\"%s\",", st->tls_version, st->tls_cipher);
	else
		printf("\"tls_version\":null,\"tls_cipher\":null,");
	printf("\"tls_handshakes\":%llu,\"tls_resumed\":%llu,\"tls_failures\":%llu,"
	       "\"auth\":%s,\"auth_failures\":%llu,",
	       (unsigned long long)st->tls_handshakes, (unsigned long long)st->tls_resumed,
	       (unsigned long long)st->tls_failures, cfg->msg.auth ? "true" : "false",
	       (unsigned long long)st->auth_failures);
	printf("\"connections\":%u,\"connections_opened\":%llu,\"threads\":%u,\"size\":%llu,"
	       "\"recipients\":%u,\"pipelining\":%s}\n",
	       cfg->connections, (unsigned long long)st->connections, cfg->threads,
	       (unsigned long long)cfg->size, cfg->recipients, cfg->pipelining ? "true" : "false");
}

void
load_report(const struct load_cfg *cfg, const struct load_stats *st, double el)
{
	double mps = el > 0 ? (double)st->accepted / el : 0;
	double mbps = el > 0 ? (double)st->bytes_accepted / el / (1024.0 * 1024.0) : 0;

	if (cfg->json)
		load_report_json(cfg, st, el, mps, mbps);
	else
		load_report_text(cfg, st, el, mps, mbps);
	fflush(stdout);
}

void
load_progress(const struct load_cfg *cfg, struct load_worker *w, unsigned n,
	      double el, uint64_t *last_accepted, double *last_s)
{
	uint64_t sent = 0, acc = 0, ref = 0, err = 0;
	double rate;

	(void)cfg;
	/* Relaxed reads of counters other threads bump: a progress line may be a hair stale. */
	for (unsigned i = 0; i < n; i++) {
		const struct load_stats *st = &w[i].st;

		sent += load_read(&st->sent);
		acc += load_read(&st->accepted);
		err += load_read(&st->connect_errors) + load_read(&st->disconnects) +
		       load_read(&st->timeouts);
		for (unsigned c = 0; c < LOAD_CODES; c++)
			ref += load_read(&st->refused[c]);
	}
	rate = el > *last_s ? (double)(acc - *last_accepted) / (el - *last_s) : 0;
	fprintf(stderr, "\r%7.1fs  sent %llu  accepted %llu  refused %llu  errors %llu  %.0f msgs/s   ",
		el, (unsigned long long)sent, (unsigned long long)acc, (unsigned long long)ref,
		(unsigned long long)err, rate);
	*last_accepted = acc;
	*last_s = el;
}
