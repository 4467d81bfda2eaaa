# Install rules and the CMake package (find_package(plugmon) -> plugmon::probe, plugmon::alloc).
#
# Components:
#   probe   libplugmon_probe, libplugmon_alloc (opt-in allocation accounting), include/plugmon/*.hpp,
#           lib/cmake/plugmon (what a plugin builds against)
#   agent   plugmon-agent and plugmonctl (when they are built)
#   system  systemd unit, sysusers entry and /etc config; only with PLUGMON_INSTALL_SYSTEM_FILES=ON,
#           because they go to absolute paths (a prefix install as a normal user must not need them)
include(CMakePackageConfigHelpers)

option(PLUGMON_INSTALL_SYSTEM_FILES
  "Also install the systemd unit, the sysusers entry and the config under ${CMAKE_INSTALL_FULL_SYSCONFDIR}"
  OFF)

set(PLUGMON_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/plugmon")

install(TARGETS plugmon_probe plugmon_alloc EXPORT plugmonTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT probe NAMELINK_COMPONENT probe
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT probe
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT probe
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/plugmon"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT probe
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT plugmonTargets
  NAMESPACE plugmon::
  FILE plugmonTargets.cmake
  DESTINATION "${PLUGMON_CMAKE_INSTALL_DIR}"
  COMPONENT probe)
configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/plugmonConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/plugmonConfig.cmake"
  INSTALL_DESTINATION "${PLUGMON_CMAKE_INSTALL_DIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/plugmonConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/plugmonConfig.cmake"
  "${PROJECT_BINARY_DIR}/plugmonConfigVersion.cmake"
  DESTINATION "${PLUGMON_CMAKE_INSTALL_DIR}"
  COMPONENT probe)

# The executables find an installed libplugmon_probe beside them, wherever the prefix is.
foreach(plugmon_exe IN ITEMS plugmon-agent plugmonctl)
  if(TARGET ${plugmon_exe})
    set_target_properties(${plugmon_exe} PROPERTIES
      INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
    install(TARGETS ${plugmon_exe}
      RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT agent)
  endif()
endforeach()

if(PLUGMON_INSTALL_SYSTEM_FILES)
  # The unit in deploy/ names /usr/local/bin and /etc/plugmon (the default prefix, copied by
  # hand); the installed copy names where this install really puts the agent and its config.
  set(plugmon_conf_dir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/plugmon")
  file(READ "${PROJECT_SOURCE_DIR}/deploy/plugmon-agent.service" plugmon_unit)
  string(REPLACE "/usr/local/bin/plugmon-agent" "${CMAKE_INSTALL_FULL_BINDIR}/plugmon-agent"
    plugmon_unit "${plugmon_unit}")
  string(REPLACE "/etc/plugmon/plugmon.toml" "${plugmon_conf_dir}/plugmon.toml"
    plugmon_unit "${plugmon_unit}")
  file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/deploy/plugmon-agent.service"
    CONTENT "${plugmon_unit}")
  set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY
    CMAKE_CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/deploy/plugmon-agent.service")

  install(FILES "${PROJECT_BINARY_DIR}/deploy/plugmon-agent.service"
    DESTINATION lib/systemd/system COMPONENT system)
  install(FILES "${PROJECT_SOURCE_DIR}/deploy/plugmon.sysusers"
    DESTINATION lib/sysusers.d RENAME plugmon.conf COMPONENT system)
  # The example always lands as plugmon.toml.example; plugmon.toml only when there is none yet,
  # so reinstalling never overwrites an administrator's configuration.
  install(FILES "${PROJECT_SOURCE_DIR}/deploy/plugmon.toml"
    DESTINATION "${plugmon_conf_dir}" RENAME plugmon.toml.example COMPONENT system)
  install(CODE "
    if(NOT EXISTS \"\$ENV{DESTDIR}${plugmon_conf_dir}/plugmon.toml\")
      file(INSTALL DESTINATION \"${plugmon_conf_dir}\" TYPE FILE
        FILES \"${PROJECT_SOURCE_DIR}/deploy/plugmon.toml\")
    else()
      message(STATUS \"Keeping existing: \$ENV{DESTDIR}${plugmon_conf_dir}/plugmon.toml\")
    endif()" COMPONENT system)
endif()
