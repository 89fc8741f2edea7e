package api

import "github.com/gin-gonic/gin"

// registerEventRoutes adds event intake, routing rules and filed issues (scope events:write).
func (s *Server) registerEventRoutes(ws *gin.RouterGroup) {}
