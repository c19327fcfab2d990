package discovery

import (
	"fmt"
	"log/slog"

	"github.com/govs-lb/govs/internal/config"
)

func newDockerSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	return nil, fmt.Errorf("discovery type docker is not built yet")
}
