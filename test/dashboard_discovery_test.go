package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govs-lb/govs/test/loopback"
)

// TestDashboardDiscovery drives the dashboard's discovery panel in headless
// Chromium against a real "govs run" with a file discovery source: the
// source's state, origin, servers found and last success are shown, the
// discovered real server is marked as such in its service's table (the
// written one is not), a bad file turns the source FAIL with its error shown
// as text (the error quotes what the file holds: markup in it must not
// become HTML, there and in the transitions list), the pool kept
// (keep_last), and an empty file is a drop shown
// as held, and putting the server back makes the source ok again. It needs Debian's chromium package; without it it skips.
func TestDashboardDiscovery(t *testing.T) {
	browser := requireChromium(t)
	const token = "dashboard-discovery-read-token-41c9"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "read-token")
	writeFile(t, tokenFile, token+"\n")

	written, found := loopback.LineServer(t, "written"), loopback.LineServer(t, "found")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	servers := filepath.Join(dir, "servers.json")
	writeFile(t, servers, fmt.Sprintf(`[{"address": %q, "weight": 2, "name": "found-a"}]`+"\n", found))
	file := filepath.Join(dir, "govs.yaml")
	// confirm and confirm_time keep a drop held for the whole test; the
	// read-only token is all the page needs.
	writeFile(t, file, fmt.Sprintf(`api:
  http: %s
  read_token_file: %s
virtual_servers:
  - name: disco
    address: %s
    scheduler: rr
    health_check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
    slow_start: 1h
    real_servers:
      - {address: %s}
    discovery:
      type: file
      path: %s
      interval: 100ms
      settle: 100ms
      confirm: 1000
      confirm_time: 1h
`, httpAddr, tokenFile, vip, written, servers))
	startGovs(t, file)
	base := "http://" + httpAddr + "/"

	cr := startChromium(t, browser)
	defer cr.close()
	page := cr.newPage(t, 1440, 1000)
	page.navigate(t, base)
	page.waitFor(t, "the token prompt", `document.body.dataset.state === 'login'`)
	page.submitToken(t, token)
	page.waitFor(t, "live data", `document.body.dataset.state === 'live' && +document.body.dataset.updates >= 2`)

	src := fmt.Sprintf(`document.querySelector('#discovery [data-discovery-source="tcp/%s"]')`, vip)
	field := func(f string) string { return fmt.Sprintf(`%s.querySelector('[data-field="%s"]')`, src, f) }
	text := func(f string) string { return field(f) + `.textContent` }
	row := func(rs string) string {
		return fmt.Sprintf(`document.querySelector('[data-service="tcp/%s"] tr[data-backend="%s"]')`, vip, rs)
	}
	origin := "file:" + servers

	// The source answers: ok, one server found and in the pool.
	page.waitFor(t, "the discovery panel", `!document.getElementById('discovery').hidden && `+src)
	page.waitFor(t, "the source ok", src+`.dataset.state === 'ok' && `+text("state")+` === 'ok'`)
	page.waitFor(t, "its origin", text("origin")+fmt.Sprintf(` === '%s (keep_last)'`, origin))
	page.waitFor(t, "the servers found", text("servers")+` === '1 found · 1 active · 0 draining'`)
	page.waitFor(t, "the last success", `/ago · [0-9]+ answers$/.test(`+text("last-success")+`) && !`+text("last-success")+`.startsWith('never')`)
	page.waitFor(t, "no error yet", `!`+field("last-error")+` && !`+field("message"))
	page.waitFor(t, "the discovery pill", `document.querySelector('[data-pill="discovery"]').textContent === 'Discovery 1 source ok'`)

	// The table marks the discovered real server with its origin, and only it.
	page.waitFor(t, "both real servers", row(written)+` && `+row(found))
	page.waitFor(t, "the discovered one marked", fmt.Sprintf(`%s.querySelector('.rs-origin').dataset.origin === '%s' && %s.querySelector('.rs-origin').textContent === 'file'`,
		row(found), origin, row(found)))
	page.waitFor(t, "the written one not marked", row(written)+`.querySelector('.rs-origin') === null`)
	// Its name is the source's, set apart from an operator's name.
	page.waitFor(t, "the source's name", row(found)+`.querySelector('.rs-source-name').textContent === 'found-a' && `+
		row(written)+`.querySelector('.rs-name') === null`)
	// Its weight is the source's, at once: the service has slow_start, but
	// the first set a source finds when govs starts starts at full weight,
	// as the written servers do.
	page.waitFor(t, "the source's weight", row(found)+`.querySelector('[data-field="weight"]').textContent === '2'`)

	// A bad file: the error quotes the entry, markup and all. It must show as
	// text (no element made of it, no handler run), the source FAIL, and the
	// pool kept as it was.
	const evil = `<img src=x onerror=window.pwned=1><b>bold</b>`
	writeFile(t, servers, `[{"address": "`+evil+`:80"}]`+"\n")
	page.waitFor(t, "the source failing", src+`.dataset.state === 'fail' && `+text("state")+` === 'FAIL'`)
	page.waitFor(t, "the error as text", text("last-error")+`.includes('`+evil+`') && `+field("last-error")+`.children.length === 0`)
	transition := func(change string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#events li')].find(li => li.textContent.includes('disco discovery file %s'))`, change)
	}
	page.waitFor(t, "the failure among the transitions", transition("ok → fail")+`.querySelector('.why').textContent.includes('`+evil+`')`)
	page.waitFor(t, "no element from the error", `document.querySelector('#discovery img, #discovery b:not(.nm), #events img') === null && `+
		`![...document.querySelectorAll('b')].some(b => b.textContent === 'bold') && !window.pwned`)
	page.waitFor(t, "the error count", `/^[1-9][0-9]* · last /.test(`+text("errors")+`)`)
	page.waitFor(t, "keep_last said", text("message")+` === 'source failing: keeping the last good set of 1 (fail_policy keep_last)'`)
	page.waitFor(t, "the pool kept", text("servers")+` === '1 found · 1 active · 0 draining' && `+row(found))
	page.waitFor(t, "the pill failing", `document.querySelector('[data-pill="discovery"]').textContent === 'Discovery 1 failing' && document.querySelector('[data-pill="discovery"]').classList.contains('bad')`)

	// An empty answer is a drop to zero: held, the pool kept, the old error
	// still listed (dimmed) for whoever looks after the outage.
	writeFile(t, servers, "[]\n")
	page.waitFor(t, "the drop held", src+`.dataset.state === 'held' && `+text("state")+` === 'HELD'`)
	page.waitFor(t, "what is held", text("held")+`.startsWith('drop 1 → 0 since ') && `+text("held")+`.includes('/1000 answers or at ')`)
	page.waitFor(t, "no failure said any more", `!`+field("message"))
	page.waitFor(t, "the old error dimmed", field("last-error")+`.classList.contains('old') && `+text("last-error")+`.includes('`+evil+`')`)
	page.waitFor(t, "the pool still kept", row(found)+` !== null`)
	page.waitFor(t, "the held drop among the transitions", transition("fail → held")+`.querySelector('.why').textContent === 'drop 1 → 0 held until confirmed'`)
	page.waitFor(t, "the pill held", `document.querySelector('[data-pill="discovery"]').textContent === 'Discovery 1 held'`)

	// The operator puts the server back: the held drop is withdrawn, the
	// source ok again.
	writeFile(t, servers, fmt.Sprintf(`[{"address": %q, "weight": 2, "name": "found-a"}]`+"\n", found))
	page.waitFor(t, "the source ok again", src+`.dataset.state === 'ok' && !`+field("held")+` && `+text("servers")+` === '1 found · 1 active · 0 draining'`)
	page.waitFor(t, "the recovery among the transitions", transition("held → ok"))
	page.waitFor(t, "the pill ok again", `document.querySelector('[data-pill="discovery"]').textContent === 'Discovery 1 source ok'`)

	// A server added at the source joins the running service as any added
	// real server does: it slow-starts (weight 1 of its 100 for most of an
	// hour), marked as discovered.
	late := loopback.LineServer(t, "late")
	writeFile(t, servers, fmt.Sprintf(`[{"address": %q, "weight": 2, "name": "found-a"}, {"address": %q, "weight": 100, "name": "late-b"}]`+"\n", found, late))
	page.waitFor(t, "the new server", text("servers")+` === '2 found · 2 active · 0 draining' && `+row(late))
	page.waitFor(t, "it slow-starts", row(late)+`.querySelector('[data-field="weight"]').textContent === '1 (100)' && `+
		row(late)+`.querySelector('[data-field="state"]').textContent === 'up' && `+row(late)+`.querySelector('.rs-origin') !== null && `+
		row(late)+`.querySelector('.rs-source-name').textContent === 'late-b'`)

	if errs := cr.pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
