# The batch codec and the on-disk spool (plugmon_store_spool); included from agent/CMakeLists.txt.
add_library(plugmon_store_spool STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/store/batch.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/store/spool.cpp)
target_include_directories(plugmon_store_spool PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(plugmon_store_spool
  PUBLIC plugmon_agent_core ZLIB::ZLIB
  PRIVATE plugmon_warnings)
