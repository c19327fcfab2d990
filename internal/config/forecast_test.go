package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestForecastKeys(t *testing.T) {
	src := "virtual_servers:\n  - address: 127.0.0.1:80\n    slow_start: 1m\n    forecast:\n      mode: prewarm\n      horizon: 10m\n      capacity: 250\n      capacity_alert: false\n      step: 10s\n      season: 1h\n" +
		"    real_servers:\n      - address: 127.0.0.1:81\n      - address: 127.0.0.1:82\n        standby: true\n"
	c, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	vs := c.VirtualServers[0]
	f := vs.Forecast
	if f.Mode != ForecastPrewarm || f.HorizonOrDefault() != 10*time.Minute || f.Capacity != 250 || f.AlertOn() || !vs.RealServers[1].Standby ||
		f.StepOrDefault() != 10*time.Second || f.SeasonOrDefault() != time.Hour {
		t.Fatalf("parsed %+v, standby %v", f, vs.RealServers[1].Standby)
	}
	// govs convert and the API's edits write the configuration back.
	out, err := EncodeYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("g.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if f2 := c2.VirtualServers[0].Forecast; f2 == nil || f2.Mode != ForecastPrewarm || f2.Capacity != 250 || f2.AlertOn() || f2.Step.D() != 10*time.Second || f2.Season.D() != time.Hour ||
		!c2.VirtualServers[0].RealServers[1].Standby {
		t.Fatalf("written back and read again:\n%s", out)
	}
	var none *Forecast
	if none.HorizonOrDefault() != DefaultForecastHorizon || !none.AlertOn() || none.StepOrDefault() != time.Minute || none.SeasonOrDefault() != 24*time.Hour {
		t.Fatal("defaults without a forecast block")
	}
	vsh := "virtual_servers:\n  - address: 127.0.0.1:80\n    forecast:\n"
	rs := "    real_servers:\n      - address: 127.0.0.1:81\n"
	for _, tc := range []struct{ src, want string }{
		{vsh + "      mode: eager\n" + rs, `f.yaml:4:13: unknown forecast mode "eager" (forecast-only or prewarm)`},
		{vsh + "      horizon: 48h\n" + rs, `f.yaml:4:16: forecast horizon 48h0m0s must be between 0 and 24h`},
		{vsh + "      capacity: -3\n" + rs, `f.yaml:4:17: forecast capacity must be a number`},
		{vsh + "      capacity_alert: maybe\n" + rs, `f.yaml:4:23:`},
		{vsh + "      prewarm: true\n" + rs, `f.yaml:4:7: unknown key "prewarm"`},
		{vsh + "      step: 1s\n" + rs, `f.yaml:4:13: forecast step 1s must be between 2s and 1h`},
		{vsh + "      step: 2s\n      season: 61s\n" + rs, `f.yaml:5:15: forecast season 1m1s must be a whole number of steps (step 2s)`},
		{vsh + "      step: 2s\n      season: 2s\n" + rs, `f.yaml:5:15: forecast season 2s must be 2 to 100000 steps of 2s`},
		{vsh + "      season: 2000h\n" + rs, `f.yaml:4:15: forecast season 2000h0m0s must be 2 to 100000 steps of 1m0s`},
		{vsh + "      step: 2s\n      season: 1m\n" + rs, `f.yaml:5:15: the default forecast horizon 15m0s must not be longer than the season 1m0s (set horizon)`},
		{vsh + "      season: 1h\n      horizon: 2h\n" + rs, `f.yaml:5:16: forecast horizon 2h0m0s must not be longer than the season 1h0m0s`},
	} {
		_, err := Parse("f.yaml", []byte(tc.src))
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(list[0].Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
}
