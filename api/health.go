package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// readyTimeout bounds a readiness probe: a store or Redis slower than this
// is as good as down to a load balancer.
const readyTimeout = 2 * time.Second

func (s *server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 503 while the store or Redis does not answer. The reason
// is logged, not shown: probes are unauthenticated.
func (s *server) readyz(c *gin.Context) {
	if s.d.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
		defer cancel()
		if err := s.d.Ready(ctx); err != nil {
			s.log.WarnContext(c.Request.Context(), "not ready", "request_id", requestIDOf(c), "err", err)
			c.JSON(http.StatusServiceUnavailable, errorBody{Error: errorDetail{
				Code: "not_ready", Message: "a dependency is not reachable", RequestID: requestIDOf(c)}})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
