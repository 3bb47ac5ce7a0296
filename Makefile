# payd — top-level entry points. CMake does the building; this file wires the
# commands people type: make, make run, make test, make bench, make fuzz, make clean.

BUILD      ?= build
TEST_BUILD ?= build-test
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
DATA_DIR   ?= .dev
CMAKE_FLAGS ?=

.PHONY: all deps run test bench fuzz clean

all:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAYD_TESTS=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh

run: deps all
	@$(BUILD)/src/cmd/payd --dev --data-dir $(DATA_DIR)

# The test build has ASan + UBSan on; every test runs under CTest, which prints the summary.
# Then a ThreadSanitizer build runs the unit tests and the concurrency tests again
# (TSAN_TESTS; TSAN=0 skips it).
TSAN ?= 1
TSAN_TESTS ?= ^unit/|^integration/(concurrency|races|reports)$$
test: deps
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPAYD_SANITIZE=ON -DPAYD_TESTS=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)
	@cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@if [ "$(TSAN)" = 1 ]; then \
	  cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPAYD_TSAN=ON -DPAYD_TESTS=ON $(CMAKE_FLAGS) >/dev/null && \
	  cmake --build $(TSAN_BUILD) -j $(JOBS) && \
	  cd $(TSAN_BUILD) && ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)'; \
	fi

bench:
	@scripts/deps.sh --bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BENCH_ARGS)

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPAYD_FUZZ=ON -DPAYD_TESTS=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@echo "fuzz targets: $$(ls $(FUZZ_BUILD)/fuzz/*/fuzz_* | tr '\n' ' ')"
	@echo "run one: $(FUZZ_BUILD)/fuzz/config/fuzz_config -max_total_time=60 fuzz/config/corpus"

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
