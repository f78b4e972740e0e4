# Kiln: `make demo` runs the whole pipeline locally; `make test` runs every test against real services.
.PHONY: setup build test bench demo fuzz loadtest soak overload clean

setup:
	scripts/setup.sh

build: setup
	for product in kiln kiln-scraper kiln-normalizer kiln-compactor kiln-query kiln-ruler; do swift build --product "$$product"; done

test:
	scripts/test.sh

bench: setup
	scripts/bench.sh

demo: setup
	scripts/demo.sh

fuzz: setup
	scripts/fuzz.sh

loadtest: setup
	scripts/loadtest.sh

soak: setup
	scripts/soak.sh

overload: setup
	scripts/overload.sh

clean:
	rm -rf .build run
