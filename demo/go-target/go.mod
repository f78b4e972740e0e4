module kiln.dev/demo/go-target

go 1.19
