DROP TABLE passkey_flows;
DROP TABLE passkeys;
