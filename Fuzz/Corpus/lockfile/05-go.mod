go.mod
module github.com/acme/shop

go 1.21

require (
\tgithub.com/gin-gonic/gin v1.9.1
\tgolang.org/x/net v0.17.0 // indirect
)

require github.com/stretchr/testify v1.8.4