// The classifier behind every 503 `database unavailable` (api/errors.ts), on the errors pg itself raises
// when a connection cannot be had in time, is lost, or a statement runs past its deadline: each is made
// here with real pg (against real PostgreSQL, or a TCP server that never answers or hangs up at once).
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { dependencyDown, unavailableDependency } from '../../api/errors.js';
import { databaseUrl } from '../support/env.js';

interface TcpServer {
  url: string;
  close(): Promise<void>;
}

/** A TCP server on a free local port that accepts connections and then does `onSocket` with them. */
async function tcpServer(onSocket: (socket: Socket) => void): Promise<TcpServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `postgres://keyfarm@127.0.0.1:${port}/keyfarm`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The error a promise rejects with (the test fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  const outcome = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(outcome instanceof Error, 'the call failed with an Error');
  return outcome;
}

/** The one answer both handlers give: a database that is up by its state, so only the error itself counts. */
const everythingUp = { redisUp: () => true, databaseUp: async () => true };

async function assertDatabaseUnavailable(err: Error): Promise<void> {
  assert.equal(unavailableDependency(err), 'database', `${err.name}: ${err.message}`);
  assert.equal(await dependencyDown(err, everythingUp), 'database', 'recognised without asking the database');
}

describe('pg errors of a database that cannot serve are "database unavailable"', () => {
  let silent: TcpServer;
  let hangingUp: TcpServer;

  before(async () => {
    silent = await tcpServer(() => undefined);
    hangingUp = await tcpServer((socket) => socket.destroy());
  });
  after(async () => {
    await silent.close();
    await hangingUp.close();
  });

  it('a pool that cannot hand out a connection within its acquire timeout, and the connect that timed out', async () => {
    const pool = new pg.Pool({ connectionString: silent.url, max: 1, connectionTimeoutMillis: 150 });
    pool.on('error', () => undefined);
    try {
      const [connecting, waiting] = await Promise.all([rejection(pool.query('SELECT 1')), rejection(pool.connect())]);
      assert.equal(connecting.message, 'Connection terminated due to connection timeout');
      assert.equal(waiting.message, 'timeout exceeded when trying to connect');
      await assertDatabaseUnavailable(connecting);
      await assertDatabaseUnavailable(waiting);
    } finally {
      await pool.end();
    }
  });

  it('a client outside a pool whose connect timed out', async () => {
    const client = new pg.Client({ connectionString: silent.url, connectionTimeoutMillis: 150 });
    client.on('error', () => undefined);
    const err = await rejection(client.connect());
    assert.equal(err.message, 'timeout expired');
    await assertDatabaseUnavailable(err);
  });

  it('a server that hangs up while connecting', async () => {
    const client = new pg.Client({ connectionString: hangingUp.url });
    client.on('error', () => undefined);
    const err = await rejection(client.connect());
    assert.equal(err.message, 'Connection terminated unexpectedly');
    await assertDatabaseUnavailable(err);
  });

  it('a connection the server terminated (57P01), and the client used after that', async () => {
    const victim = new pg.Client({ connectionString: databaseUrl() });
    const events: Error[] = [];
    victim.on('error', (e) => events.push(e));
    await victim.connect();
    const admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
    try {
      const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const deadline = Date.now() + 2000;
      while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(
        events.map((e) => (e as { code?: string }).code ?? e.message),
        ['57P01', 'Connection terminated unexpectedly'],
      );
      for (const e of events) await assertDatabaseUnavailable(e);
      const err = await rejection(victim.query('SELECT 1'));
      assert.equal(err.message, 'Client has encountered a connection error and is not queryable');
      await assertDatabaseUnavailable(err);
    } finally {
      await admin.end();
      await victim.end().catch(() => undefined);
    }
  });

  it('a refused connection', async () => {
    const free = await tcpServer(() => undefined);
    await free.close();
    const client = new pg.Client({ connectionString: free.url });
    client.on('error', () => undefined);
    const err = await rejection(client.connect());
    assert.equal((err as { code?: string }).code, 'ECONNREFUSED');
    await assertDatabaseUnavailable(err);
  });

  it("a statement past PostgreSQL's statement_timeout (57014) and past this side's query_timeout", async () => {
    const client = new pg.Client({ connectionString: databaseUrl(), statement_timeout: 100, query_timeout: 2000 });
    await client.connect();
    try {
      const cancelled = await rejection(client.query('SELECT pg_sleep(5)'));
      assert.ok(cancelled instanceof pg.DatabaseError);
      assert.equal(cancelled.code, '57014');
      await assertDatabaseUnavailable(cancelled);
    } finally {
      await client.end();
    }
    const impatient = new pg.Client({ connectionString: databaseUrl(), query_timeout: 100 });
    impatient.on('error', () => undefined);
    await impatient.connect();
    try {
      const err = await rejection(impatient.query('SELECT pg_sleep(1)'));
      assert.equal(err.message, 'Query read timeout');
      await assertDatabaseUnavailable(err);
    } finally {
      await impatient.end();
    }
  });

  it('a closed client, and a pool after end', async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    await client.end();
    await assertDatabaseUnavailable(await rejection(client.query('SELECT 1')));
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    await pool.end();
    await assertDatabaseUnavailable(await rejection(pool.query('SELECT 1')));
  });

  it('one of them as the cause of an error that wraps it', async () => {
    const pool = new pg.Pool({ connectionString: silent.url, max: 1, connectionTimeoutMillis: 100 });
    pool.on('error', () => undefined);
    try {
      const err = await rejection(pool.query('SELECT 1'));
      await assertDatabaseUnavailable(new Error('loading the account failed', { cause: err }));
    } finally {
      await pool.end();
    }
  });
});

describe('errors that are not a database failing stay a 500 (or their own 4xx)', () => {
  it("PostgreSQL's refusals of the query itself: a syntax error, a unique violation", async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    try {
      const syntax = await rejection(client.query('SELEC 1'));
      assert.ok(syntax instanceof pg.DatabaseError);
      assert.equal(unavailableDependency(syntax), undefined);
      assert.equal(await dependencyDown(syntax, everythingUp), undefined);
      await client.query('CREATE TEMP TABLE one_row (id int PRIMARY KEY)');
      await client.query('INSERT INTO one_row VALUES (1)');
      const unique = await rejection(client.query('INSERT INTO one_row VALUES (1)'));
      assert.equal((unique as { code?: string }).code, '23505');
      assert.equal(unavailableDependency(unique), undefined);
    } finally {
      await client.end();
    }
  });

  it('a plain bug', async () => {
    const err = new TypeError("Cannot read properties of undefined (reading 'id')");
    assert.equal(unavailableDependency(err), undefined);
    assert.equal(await dependencyDown(err, everythingUp), undefined);
  });
});
