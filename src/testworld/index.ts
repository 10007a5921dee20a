// The test world's public surface: DNS server, scripted receivers, behaviours, the world.
export * from './dns-server.js';
export * from './receiver.js';
export * from './behaviours.js';
export * from './world.js';
