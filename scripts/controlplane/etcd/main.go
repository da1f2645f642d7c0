// Command etcd is etcd's own server main (go.etcd.io/etcd/server/v3/etcdmain), built in this module
// so that etcd and the Kubernetes components share one set of pinned dependencies.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
