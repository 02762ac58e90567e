export * from '@warren/registry';
