"""Breaker and pool sources: Prometheus, Spring Boot actuator, Hystrix/Turbine, Envoy admin."""
