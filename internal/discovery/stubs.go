package discovery

import (
	"fmt"
	"log/slog"

	"github.com/govs-lb/govs/internal/config"
)

func newEtcdSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	return nil, fmt.Errorf("discovery type etcd is not built yet")
}

func newDockerSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	return nil, fmt.Errorf("discovery type docker is not built yet")
}
