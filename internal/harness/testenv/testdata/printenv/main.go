// Command printenv prints the AWS environment variables it was given, one NAME=value a line; the
// harness's tests build it with BuildBinary and run it with AWSEnv.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") {
			fmt.Println(kv)
		}
	}
}
