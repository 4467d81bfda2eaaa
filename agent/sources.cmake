# Sources of the agent's configuration and HTTP listener, for the lead's plugmon_agent_core.
set(PLUGMON_AGENT_CONFIG_HTTP_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/config.cpp
  ${CMAKE_CURRENT_LIST_DIR}/http.cpp)
# `plugmon-agent --version` prints the project version. Source properties are per directory:
# this takes effect for targets created in the directory that includes this file.
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/config.cpp PROPERTIES
  COMPILE_DEFINITIONS "PLUGMON_VERSION=\"${PROJECT_VERSION}\"")
