package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// webhookTimeout bounds one POST.
const webhookTimeout = 10 * time.Second

var webhookClient = &http.Client{Timeout: webhookTimeout}

// postHooks POSTs ev as JSON to every webhook, each retried with backoff
// (Backoff, doubled, at most Attempts tries) until it answers 2xx.
func (s *Sender) postHooks(ev Event) {
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	for _, url := range s.state.Load().webhooks {
		delay := s.Backoff
		var err error
		for try := 1; try <= max(s.Attempts, 1); try++ {
			if err = post(url, body); err == nil {
				break
			}
			if try < s.Attempts {
				time.Sleep(delay)
				delay = min(delay*2, time.Minute)
			}
		}
		if err != nil {
			s.log.Warn("alert webhook failed", "url", url, "subject", ev.Subject, "attempts", s.Attempts, "err", err)
		}
	}
}

func post(url string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "govs-alert")
	resp, err := webhookClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
