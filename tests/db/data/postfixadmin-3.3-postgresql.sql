-- The tables PostfixAdmin 3.3's upgrade.php leaves on PostgreSQL (config version 1847), from its
-- pgsql steps (2, 4, 344, 438, 439, 479, 495, 655, 729, 945, 946, 968, 1050, 1283, 1519, 1610,
-- 1762, 1837, 1839, 1840, 1842-1844). The triggers of 730 are compared by name and event only.
-- Independent of pymailsrv.db.models.
CREATE TABLE config (id SERIAL, name VARCHAR(20) NOT NULL UNIQUE, value VARCHAR(20) NOT NULL, PRIMARY KEY(id));
CREATE TABLE domain (
    domain character varying(255) NOT NULL,
    description character varying(255) NOT NULL default '',
    aliases integer NOT NULL default 0,
    mailboxes integer NOT NULL default 0,
    maxquota bigint NOT NULL default 0,
    quota bigint NOT NULL default 0,
    transport character varying(255) default NULL,
    backupmx boolean NOT NULL default false,
    created timestamp with time zone default now(),
    modified timestamp with time zone default now(),
    active boolean NOT NULL default true,
    password_expiry int DEFAULT 0,
    Constraint "domain_key" Primary Key ("domain"));
CREATE INDEX domain_domain_active ON domain(domain,active);
CREATE TABLE admin (
    "username" character varying(255) NOT NULL,
    "password" character varying(255) NOT NULL default '',
    "created" timestamp with time zone default now(),
    "modified" timestamp with time zone default now(),
    "active" boolean NOT NULL default true,
    superadmin BOOLEAN NOT NULL DEFAULT 'f',
    phone varchar(30) NOT NULL DEFAULT '',
    email_other varchar(255) NOT NULL DEFAULT '',
    token varchar(255) NOT NULL DEFAULT '',
    token_validity timestamp with time zone default '2000-01-01',
    Constraint "admin_key" Primary Key ("username"));
CREATE TABLE alias (
    address character varying(255) NOT NULL,
    goto text NOT NULL,
    domain character varying(255) NOT NULL REFERENCES "domain",
    created timestamp with time zone default now(),
    modified timestamp with time zone default now(),
    active boolean NOT NULL default true,
    Constraint "alias_key" Primary Key ("address"));
CREATE INDEX alias_address_active ON alias(address,active);
CREATE INDEX alias_domain_idx ON alias(domain);
CREATE TABLE domain_admins (
    username character varying(255) NOT NULL,
    domain character varying(255) NOT NULL REFERENCES "domain",
    created timestamp with time zone default now(),
    active boolean NOT NULL default true,
    id SERIAL PRIMARY KEY);
CREATE TABLE log (
    timestamp timestamp with time zone default now(),
    username character varying(255) NOT NULL default '',
    domain character varying(255) NOT NULL default '',
    action character varying(255) NOT NULL default '',
    data text NOT NULL default '',
    id SERIAL PRIMARY KEY);
CREATE INDEX log_domain_timestamp_idx ON log(domain,timestamp);
CREATE TABLE mailbox (
    username character varying(255) NOT NULL,
    password character varying(255) NOT NULL default '',
    name character varying(255) NOT NULL default '',
    maildir character varying(255) NOT NULL default '',
    quota bigint NOT NULL default 0,
    created timestamp with time zone default now(),
    modified timestamp with time zone default now(),
    active boolean NOT NULL default true,
    domain varchar(255) REFERENCES domain (domain),
    local_part varchar(255) NOT NULL,
    phone varchar(30) NOT NULL DEFAULT '',
    email_other varchar(255) NOT NULL DEFAULT '',
    token varchar(255) NOT NULL DEFAULT '',
    token_validity timestamp with time zone default '2000-01-01',
    password_expiry timestamp with time zone default '2000-01-01',
    Constraint "mailbox_key" Primary Key ("username"));
CREATE INDEX mailbox_username_active ON mailbox(username,active);
CREATE INDEX mailbox_domain_idx ON mailbox(domain);
CREATE TABLE vacation (
    email character varying(255) PRIMARY KEY,
    subject character varying(255) NOT NULL,
    body text NOT NULL default '',
    created timestamp with time zone DEFAULT now(),
    active boolean DEFAULT true NOT NULL,
    domain varchar(255) REFERENCES domain,
    modified timestamp with time zone default now(),
    activefrom timestamp with time zone default '2000-01-01',
    activeuntil timestamp with time zone default '2038-01-18',
    interval_time integer NOT NULL DEFAULT 0);
CREATE INDEX vacation_email_active ON vacation(email,active);
CREATE TABLE vacation_notification (
    on_vacation character varying(255) NOT NULL REFERENCES vacation(email) ON DELETE CASCADE,
    notified character varying(255) NOT NULL,
    notified_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT vacation_notification_pkey primary key(on_vacation,notified));
CREATE TABLE fetchmail (
    id serial,
    mailbox varchar(255) not null default '',
    src_server varchar(255) not null default '',
    src_auth varchar(15) NOT NULL,
    src_user varchar(255) not null default '',
    src_password varchar(255) not null default '',
    src_folder varchar(255) not null default '',
    poll_time integer not null default 10,
    fetchall boolean not null default false,
    keep boolean not null default false,
    protocol varchar(15) NOT NULL,
    extra_options text,
    returned_text text,
    mda varchar(255) not null default '',
    date timestamp with time zone default now(),
    usessl BOOLEAN NOT NULL DEFAULT false,
    sslcertck BOOLEAN NOT NULL DEFAULT 'f',
    sslcertpath VARCHAR(255) DEFAULT '',
    sslfingerprint VARCHAR(255) DEFAULT '',
    domain VARCHAR(255) DEFAULT '',
    active BOOLEAN NOT NULL DEFAULT 'f',
    created timestamp with time zone default '2000-01-01',
    modified timestamp with time zone default now(),
    src_port integer NOT NULL DEFAULT 0,
    primary key(id),
    CHECK (src_auth IN ('password','kerberos_v5','kerberos','kerberos_v4','gssapi','cram-md5','otp','ntlm','msn','ssh','any')),
    CHECK (protocol IN ('POP3', 'IMAP', 'POP2', 'ETRN', 'AUTO')));
CREATE TABLE alias_domain (
    alias_domain character varying(255) NOT NULL REFERENCES domain(domain) ON DELETE CASCADE,
    target_domain character varying(255) NOT NULL REFERENCES domain(domain) ON DELETE CASCADE,
    created timestamp with time zone default now(),
    modified timestamp with time zone default now(),
    active boolean NOT NULL default true,
    PRIMARY KEY(alias_domain));
CREATE INDEX alias_domain_active ON alias_domain(alias_domain,active);
CREATE TABLE quota (
    username VARCHAR(255) NOT NULL,
    path VARCHAR(100) NOT NULL,
    current bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (username, path));
CREATE TABLE quota2 (
    username VARCHAR(100) NOT NULL,
    bytes bigint NOT NULL DEFAULT 0,
    messages integer NOT NULL DEFAULT 0,
    PRIMARY KEY (username));
-- upgrade 730: Dovecot's dict quota inserts become add-to-counter updates (bodies simplified here)
CREATE OR REPLACE FUNCTION merge_quota() RETURNS TRIGGER AS $q$ BEGIN
    UPDATE quota SET current = NEW.current + current WHERE username = NEW.username AND path = NEW.path;
    IF found THEN RETURN NULL; END IF; RETURN NEW; END; $q$ LANGUAGE plpgsql;
CREATE TRIGGER mergequota BEFORE INSERT ON quota FOR EACH ROW EXECUTE PROCEDURE merge_quota();
CREATE OR REPLACE FUNCTION merge_quota2() RETURNS TRIGGER AS $q$ BEGIN
    UPDATE quota2 SET bytes = bytes + NEW.bytes, messages = messages + NEW.messages WHERE username = NEW.username;
    IF found THEN RETURN NULL; END IF; RETURN NEW; END; $q$ LANGUAGE plpgsql;
CREATE TRIGGER mergequota2 BEFORE INSERT ON quota2 FOR EACH ROW EXECUTE PROCEDURE merge_quota2();
INSERT INTO config (name, value) VALUES ('version', '1847');
