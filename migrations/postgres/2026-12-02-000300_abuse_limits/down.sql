DROP TABLE login_failures;
DROP TABLE ip_attempts;
