# libFuzzer targets (clang only; preset "fuzz"). A short run is a ctest with label fuzz; for a
# long run: build-fuzz/tests/segment_fuzz -max_total_time=3600 tests/fuzz/corpus
if(PLUGMON_BUILD_FUZZ AND CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND TARGET plugmon_agent_core)
  add_executable(segment_fuzz ${CMAKE_CURRENT_LIST_DIR}/segment_fuzz.cpp)
  target_link_libraries(segment_fuzz PRIVATE plugmon_agent_core)
  target_compile_options(segment_fuzz PRIVATE -fsanitize=fuzzer)
  target_link_options(segment_fuzz PRIVATE -fsanitize=fuzzer)
  add_test(NAME fuzz.segment_30s COMMAND segment_fuzz -max_total_time=30 -rss_limit_mb=2048)
  set_tests_properties(fuzz.segment_30s PROPERTIES LABELS fuzz TIMEOUT 120)

  # Statement normalisation: bound, idempotency, UTF-8 (needs only the one probe source).
  add_executable(fingerprint_fuzz ${CMAKE_CURRENT_LIST_DIR}/fingerprint_fuzz.cpp ${PROJECT_SOURCE_DIR}/probe/fingerprint.cpp)
  target_link_libraries(fingerprint_fuzz PRIVATE plugmon_warnings)
  target_compile_options(fingerprint_fuzz PRIVATE -fsanitize=fuzzer)
  target_link_options(fingerprint_fuzz PRIVATE -fsanitize=fuzzer)
  add_test(NAME fuzz.fingerprint_30s COMMAND fingerprint_fuzz -max_total_time=30 -rss_limit_mb=2048)
  set_tests_properties(fuzz.fingerprint_30s PROPERTIES LABELS fuzz TIMEOUT 120)
  add_executable(sketch_fuzz ${CMAKE_CURRENT_LIST_DIR}/sketch_fuzz.cpp)
  target_link_libraries(sketch_fuzz PRIVATE plugmon_agent_core)
  target_compile_options(sketch_fuzz PRIVATE -fsanitize=fuzzer)
  target_link_options(sketch_fuzz PRIVATE -fsanitize=fuzzer)
  add_test(NAME fuzz.sketch_30s COMMAND sketch_fuzz -max_total_time=30 -rss_limit_mb=2048)
  set_tests_properties(fuzz.sketch_30s PROPERTIES LABELS fuzz TIMEOUT 120)

  # The store's batch payload and spool record frame (what a spool directory hands back). The
  # two sources are compiled into the target so that libFuzzer sees their coverage.
  if(TARGET plugmon_store_spool)
    add_executable(spool_fuzz ${CMAKE_CURRENT_LIST_DIR}/spool_fuzz.cpp
      ${PROJECT_SOURCE_DIR}/agent/store/batch.cpp ${PROJECT_SOURCE_DIR}/agent/store/spool.cpp)
    target_link_libraries(spool_fuzz PRIVATE plugmon_agent_core plugmon_warnings)  # brings zlib
    target_compile_options(spool_fuzz PRIVATE -fsanitize=fuzzer)
    target_link_options(spool_fuzz PRIVATE -fsanitize=fuzzer)
    add_test(NAME fuzz.spool_30s COMMAND spool_fuzz -max_total_time=30 -rss_limit_mb=2048)
    set_tests_properties(fuzz.spool_30s PROPERTIES LABELS fuzz TIMEOUT 120)
  endif()
endif()
