package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// noDataplane forwards nothing; a real daemon uses the proxy or nft one.
type noDataplane struct{ director.NullDataplane }

// Serve a director's API on a unix socket and change it with the client.
func Example() {
	log := slog.New(slog.DiscardHandler)
	d := director.New(log, noDataplane{})
	defer d.Shutdown(0)
	cfg, _ := config.Parse("govs.yaml", []byte("virtual_servers: []\n"))
	d.Apply(cfg)

	dir, _ := os.MkdirTemp("", "govs-example-")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "govs.sock")
	srv := api.New(api.Options{Director: d, Log: log})
	defer srv.Close(context.Background())
	if err := srv.ServeUnix(sock); err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	c := api.NewUnixClient(sock)
	c.CreateService(ctx, map[string]any{"name": "web", "address": "127.0.0.1:8080", "scheduler": "rr"})
	c.CreateRealServer(ctx, "tcp", "127.0.0.1:8080", map[string]any{"address": "127.0.0.1:9001", "weight": 3}, "")
	_, err := c.CreateRealServer(ctx, "tcp", "127.0.0.1:8080", map[string]any{"address": "127.0.0.1:9002", "weight": -1}, "")
	fmt.Println(err)

	svc, _ := c.Service(ctx, "tcp", "127.0.0.1:8080")
	fmt.Println(svc.Name, svc.Scheduler, svc.RealServers[0].Address, svc.RealServers[0].Weight)
	// Output:
	// weight: weight -1 out of range (0..65535)
	// web rr 127.0.0.1:9001 3
}
