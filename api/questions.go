package api

import "github.com/gin-gonic/gin"

// registerQuestionRoutes adds the questions and replies resources (scope questions:write).
func (s *Server) registerQuestionRoutes(ws *gin.RouterGroup) {}
