package api

import "github.com/gin-gonic/gin"

// registerAccessRoutes adds OAuth connect, webhook registration and disconnect.
func (s *Server) registerAccessRoutes(v1, ws *gin.RouterGroup) {}
