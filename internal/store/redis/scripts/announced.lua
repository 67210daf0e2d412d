-- Records that the revocation behind a jti mark or a session tombstone of the tenant was announced,
-- keeping the key's expiry.
-- KEYS[1] jti revocation mark or session tombstone
-- ARGV[1] tenant
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'a:' .. ARGV[1], 'KEEPTTL')
end
return 0
