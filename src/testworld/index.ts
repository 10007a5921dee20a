// The test world's public surface: DNS server, scripted receivers, behaviours, the world, and
// the real peers (Postfix, smtp-sink, smtp-source) it can run.
export * from './dns-server.js';
export * from './receiver.js';
export * from './behaviours.js';
export * from './world.js';
export * from './peers.js';
