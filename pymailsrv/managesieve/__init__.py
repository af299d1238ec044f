"""ManageSieve (RFC 5804): users upload, check, activate and delete their Sieve scripts (the
protocol Roundcube's managesieve plugin and Thunderbird's sieve add-on speak), over the shared
net/ plumbing and the shared credential layer, like pop3/."""
