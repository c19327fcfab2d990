/*
 * golden.c prints the govsadm test state (golden_test.go: goldenState) in
 * every listing format with the printf formats of ipvsadm(8) 1.31, the
 * layout govsadm must reproduce byte for byte. It is an independent program
 * written for these tests; it shares nothing with ipvsadm but the formats.
 *
 *   cc -o /tmp/golden golden.c && /tmp/golden DIR
 *
 * writes DIR/list.golden, stats.golden, stats-exact.golden, rate.golden,
 * thresholds.golden, persistent.golden, save.golden, and the connection
 * table (print_conn) in conn.golden and conn-persistent.golden.
 */
#include <stdio.h>
#include <string.h>

enum { NUMERIC = 1, RULE = 2, STATS = 4, RATE = 8, THRESH = 16, EXACT = 32, PERSIST = 64 };

struct dest {
	const char *name;		/* ADDR:PORT, [ADDR]:PORT for IPv6 */
	int weight, uthresh, lthresh;
	unsigned active, inactive;
	unsigned long long st[5], rt[5];
	unsigned persist;		/* persistence templates (PersistConn) */
};

struct svc {
	const char *proto;		/* "TCP" or "UDP" */
	const char *opt;		/* "-t" or "-u" */
	const char *name;
	int v6;
	const char *sched, *flags;	/* flags: "" or "sh-fallback,sh-port" */
	unsigned timeout;		/* persistence, 0: none */
	const char *mask;		/* "" or the mask text */
	int ops;
	const char *fwd, *sw;		/* Forward column, -S switch */
	unsigned long long st[5], rt[5];
	int ndests;
	struct dest d[3];
	unsigned fwmark;		/* a firewall-mark service (name unused); ipvsadm
				 * prints marks with %d, so marks from 2^31 on show
				 * negative there, which -R cannot read back: govs
				 * prints them unsigned, and the state here stays below */
};

/* The state, in ipvsadm's sort order. */
static struct svc svcs[] = {
	{"TCP", "-t", "10.1.1.1:80", 0, "mh", "", 0, "", 0, "Proxy", "--proxy",
	 {0}, {0}, 0, {{0}}},
	{"TCP", "-t", "10.1.1.1:443", 0, "sh", "sh-fallback,sh-port", 300, "255.255.255.0", 0, "FullNat", "--fullnat",
	 {99999999ULL, 100000000ULL, 999999999ULL, 1000000000ULL, 99999999999999ULL},
	 {1, 2, 3, 4, 5}, 1,
	 {{"10.0.0.4:443", 65535, 0, 0, 7, 8, {1, 2, 3, 4, 5}, {0, 0, 0, 0, 0}, 9}}},
	{"TCP", "-t", "10.2.2.2:80", 0, "wrr", "", 0, "", 0, "Route", "-g",
	 {5000, 60000, 0, 4000000, 0}, {50, 600, 0, 40000, 0}, 2,
	 {{"10.0.0.5:80", 2, 0, 0, 3, 1, {3000, 40000, 0, 3000000, 0}, {30, 400, 0, 30000, 0}},
	  {"10.0.0.6:80", 1, 0, 0, 2, 0, {2000, 20000, 0, 1000000, 0}, {20, 200, 0, 10000, 0}}}},
	{"TCP", "-t", "192.168.10.1:80", 0, "wlc", "", 0, "", 0, "Masq", "-m",
	 {123456789ULL, 0, 0, 98765432109ULL, 123456789012345ULL},
	 {1234, 0, 0, 123456789ULL, 4000000000ULL}, 2,
	 {{"10.0.0.1:8080", 3, 0, 0, 0, 0, {23456789ULL, 0, 0, 5000000000ULL, 6000000000ULL}, {600, 0, 0, 50000, 60000}},
	  {"10.0.0.2:8080", 1, 0, 0, 12, 34, {100000000ULL, 0, 0, 7, 8}, {634, 0, 0, 73456789ULL, 3940000000ULL}}}},
	{"UDP", "-u", "192.168.10.1:53", 0, "rr", "", 0, "", 1, "Proxy", "--proxy",
	 {42, 40, 38, 4200, 3800}, {0}, 1,
	 {{"10.0.0.3:53", 0, 100, 10, 0, 2, {42, 40, 38, 4200, 3800}, {0}}}},
	{"TCP", "-t", "[2001:db8::1]:80", 1, "wlc", "", 600, "64", 0, "Proxy", "--proxy",
	 {0}, {0}, 1,
	 {{"[2001:db8::10]:8080", 5, 0, 0, 1, 0, {0}, {0}, 3}}},
	/* fwmark services, after the others: by mark, then family */
	{"TCP", "-t", "", 0, "rr", "", 300, "", 0, "Masq", "-m",
	 {40, 400, 300, 40000, 300000}, {4, 40, 30, 4000, 30000}, 2,
	 {{"10.0.0.7:0", 1, 0, 0, 5, 6, {10, 100, 100, 10000, 100000}, {1, 10, 10, 1000, 10000}, 2},
	  {"10.0.0.8:0", 2, 0, 0, 7, 8, {30, 300, 200, 30000, 200000}, {3, 30, 20, 3000, 20000}, 4}}, 1},
	{"TCP", "-t", "", 1, "wlc", "", 0, "", 0, "Route", "-g",
	 {0}, {0}, 1,
	 {{"[2001:db8::20]:0", 1, 0, 0, 1, 0, {0}, {0}}}, 1},
	{"TCP", "-t", "", 0, "wlc", "", 0, "", 0, "FullNat", "--fullnat",
	 {0}, {0}, 1,
	 {{"10.0.0.9:443", 3, 0, 0, 0, 0, {0}, {0}}}, 7},
};

static FILE *out;

static void largenum(unsigned long long i, int fmt)
{
	if (fmt & EXACT) {
		char tmp[32];
		int len = snprintf(tmp, sizeof(tmp), "%llu", i);
		fprintf(out, "%*llu", len <= 8 ? 9 : len + 1, i);
	} else if (i < 100000000ULL)
		fprintf(out, "%9llu", i);
	else if (i < 1000000000ULL)
		fprintf(out, "%8lluK", i / 1000);
	else if (i < 100000000000ULL)
		fprintf(out, "%8lluM", i / 1000000);
	else if (i < 100000000000000ULL)
		fprintf(out, "%8lluG", i / 1000000000ULL);
	else
		fprintf(out, "%8lluT", i / 1000000000000ULL);
}

static void title(int fmt)
{
	if (fmt & STATS)
		fprintf(out, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes");
	else if (fmt & RATE)
		fprintf(out, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS");
	else if (fmt & THRESH)
		fprintf(out, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn");
	else if (fmt & PERSIST)
		fprintf(out, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn");
	else if (!(fmt & RULE))
		fprintf(out, "Prot LocalAddress:Port Scheduler Flags\n"
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
}

static void service(struct svc *s, int fmt)
{
	char name[1024];
	int i, k;

	if (s->fwmark) {
		/* ipvsadm's print_service_entry */
		if (fmt & RULE)
			snprintf(name, sizeof(name), s->v6 ? "-f %d -6" : "-f %d", s->fwmark);
		else
			snprintf(name, sizeof(name), s->v6 ? "FWM  %d IPv6" : "FWM  %d", s->fwmark);
	} else if (fmt & RULE)
		snprintf(name, sizeof(name), "%s %s", s->opt, s->name);
	else {
		snprintf(name, sizeof(name), "%-4s %s", s->proto, s->name);
		if (!s->v6)
			name[33] = '\0';
	}
	if (fmt & RULE) {
		fprintf(out, "-A %s -s %s", name, s->sched);
		if (s->timeout) {
			fprintf(out, " -p %u", s->timeout);
			if (s->mask[0])
				fprintf(out, " -M %s", s->mask);
		}
		if (s->ops)
			fprintf(out, " -o");
		if (s->flags[0])
			fprintf(out, " -b %s", s->flags);
	} else if (fmt & (STATS | RATE)) {
		fprintf(out, "%-33s", name);
		for (k = 0; k < 5; k++)
			largenum(fmt & STATS ? s->st[k] : s->rt[k], fmt);
	} else {
		fprintf(out, "%s %s", name, s->sched);
		if (s->flags[0])
			fprintf(out, " (%s)", s->flags);
		if (s->timeout) {
			fprintf(out, " persistent %u", s->timeout);
			if (s->mask[0])
				fprintf(out, " mask %s", s->mask);
		}
		if (s->ops)
			fprintf(out, " ops");
	}
	fprintf(out, "\n");

	for (i = 0; i < s->ndests; i++) {
		struct dest *d = &s->d[i];
		char dname[64];

		snprintf(dname, sizeof(dname), "%s", d->name);
		if (!(fmt & RULE) && !s->v6)
			dname[28] = '\0';
		if (fmt & RULE) {
			fprintf(out, "-a %s -r %s %s -w %d", name, dname, s->sw, d->weight);
			/* govs saves thresholds, which ipvsadm does not */
			if (d->uthresh)
				fprintf(out, " -x %d", d->uthresh);
			if (d->lthresh)
				fprintf(out, " -y %d", d->lthresh);
			fprintf(out, "\n");
		} else if (fmt & STATS) {
			fprintf(out, "  -> %-28s", dname);
			for (k = 0; k < 5; k++)
				largenum(d->st[k], fmt);
			fprintf(out, "\n");
		} else if (fmt & RATE) {
			fprintf(out, "  -> %-28s %8llu %8llu %8llu", dname, d->rt[0], d->rt[1], d->rt[2]);
			largenum(d->rt[3], fmt);
			largenum(d->rt[4], fmt);
			fprintf(out, "\n");
		} else if (fmt & THRESH)
			fprintf(out, "  -> %-28s %-10u %-10u %-10u %-10u\n", dname,
				d->uthresh, d->lthresh, d->active, d->inactive);
		else if (fmt & PERSIST)
			fprintf(out, "  -> %-28s %-9u %-11u %-10u %-10u\n", dname,
				d->weight, d->persist, d->active, d->inactive);
		else
			fprintf(out, "  -> %-28s %-7s %-6d %-10u %-10u\n", dname, s->fwd,
				d->weight, d->active, d->inactive);
	}
}

static void list(const char *dir, const char *file, int fmt)
{
	char path[4096];
	unsigned i;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return;
	}
	if (!(fmt & RULE))
		fprintf(out, "IP Virtual Server version %d.%d.%d (size=%d)\n", 1, 2, 1, 4096);
	title(fmt);
	for (i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++)
		service(&svcs[i], fmt);
	fclose(out);
}

/* The connection table, in govsadm's order (ipvsadm prints the kernel's). */
static struct conn {
	const char *proto, *state, *src, *vip, *dst;
	unsigned expires;
} conns[] = {
	{"TCP", "ESTABLISHED", "192.0.2.10:51234", "10.1.1.1:443", "10.0.0.4:443", 899},
	{"TCP", "NONE", "192.0.2.0:0", "10.1.1.1:443", "10.0.0.4:443", 3725},
	{"UDP", "UDP", "198.51.100.7:5353", "192.168.10.1:53", "10.0.0.3:53", 59},
	{"TCP", "FIN_WAIT", "192.0.2.10:40000", "192.168.10.1:80", "10.0.0.1:8080", 120},
	{"TCP", "CLOSE_WAIT", "203.0.113.200:65535", "192.168.10.1:80", "10.0.0.2:8080", 0},
	{"TCP", "SYN_RECV", "[2001:db8:1::2]:33000", "[2001:db8::1]:80", "[2001:db8::10]:8080", 60},
};

static void list_conn(const char *dir, const char *file, int fmt)
{
	char path[4096], expire[12];
	unsigned i;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return;
	}
	fprintf(out, "IPVS connection entries\n");
	if (fmt & PERSIST)
		fprintf(out, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data");
	else
		fprintf(out, "pro expire %-11s %-18s %-18s %s\n",
			"state", "source", "virtual", "destination");
	for (i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
		struct conn *c = &conns[i];

		snprintf(expire, sizeof(expire), "%02d:%02d", c->expires / 60, c->expires % 60);
		/* no entry has persistence-engine data: the short line */
		fprintf(out, "%-3s %-6s %-11s %-18s %-18s %s\n",
			c->proto, expire, c->state, c->src, c->vip, c->dst);
	}
	fclose(out);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";

	list(dir, "list.golden", NUMERIC);
	list(dir, "stats.golden", NUMERIC | STATS);
	list(dir, "stats-exact.golden", NUMERIC | STATS | EXACT);
	list(dir, "rate.golden", NUMERIC | RATE);
	list(dir, "thresholds.golden", NUMERIC | THRESH);
	list(dir, "persistent.golden", NUMERIC | PERSIST);
	list(dir, "save.golden", NUMERIC | RULE);
	list_conn(dir, "conn.golden", NUMERIC);
	list_conn(dir, "conn-persistent.golden", NUMERIC | PERSIST);
	return 0;
}
