package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	"github.com/temporalio/ui-server/v2/server/server_options"
)

// uiServer is the embedded Temporal Web UI (github.com/temporalio/ui-server),
// serving its built-in assets and proxying API calls to the frontend.
type uiServer struct {
	srv  *uiserver.Server
	done chan struct{}
}

func startUI(opts options) (*uiServer, error) {
	addr := net.JoinHostPort(opts.IP, strconv.Itoa(opts.UIPort))
	// The UI server exits the whole process (log.Fatal) when it cannot
	// listen, so check the port first and return an error instead.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = l.Close()

	cfg := &uiconfig.Config{
		TemporalGRPCAddress: opts.frontendAddr(),
		Host:                opts.IP,
		Port:                opts.UIPort,
		EnableUI:            true,
		DefaultNamespace:    opts.Namespaces[0],
		// Plain HTTP on loopback: the CSRF cookie must not require HTTPS.
		CORS: uiconfig.CORS{CookieInsecure: true},
		// Keep the browser from fetching news/version data from the internet.
		DisableNewsFetch:   true,
		NotifyOnNewVersion: false,
		HideLogs:           true,
	}
	s := &uiServer{
		srv:  uiserver.NewServer(server_options.WithConfigProvider(cfg)),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Start()
	}()

	// Poll the health endpoint until the UI answers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(opts.dialHost(), strconv.Itoa(opts.UIPort)) + "/healthz"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("UI at %s not ready: %w", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *uiServer) stop() {
	s.srv.Stop()
	<-s.done
}
