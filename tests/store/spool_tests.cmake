# Unit tests of the batch codec and the on-disk spool (label: unit), including a kill -9 test.
if(TARGET plugmon_store_spool)
  if(NOT TARGET GTest::gtest_main)
    find_package(GTest REQUIRED)
  endif()
  include(GoogleTest)
  foreach(plugmon_test IN ITEMS batch spool)
    add_executable(store_${plugmon_test}_test ${CMAKE_CURRENT_LIST_DIR}/${plugmon_test}_test.cpp)
    target_link_libraries(store_${plugmon_test}_test
      PRIVATE plugmon_store_spool GTest::gtest_main plugmon_warnings)
    gtest_discover_tests(store_${plugmon_test}_test PROPERTIES LABELS unit)
  endforeach()
endif()
