# The store's write path (spooler and writer threads), linked into plugmon-agent.
add_library(plugmon_store STATIC ${CMAKE_CURRENT_LIST_DIR}/writer.cpp)
target_link_libraries(plugmon_store
  PUBLIC plugmon_store_sql plugmon_store_spool plugmon_agent_core PkgConfig::PQXX
  PRIVATE plugmon_warnings)
